//! The parallel stage of [`send`](super::send) and [`receive`](super::receive):
//! workers take numbered items from one queue and the next stage takes the
//! results back in number order.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use super::StreamError;

/// Workers per side: one per core this thread may run on (so `taskset`
/// and cgroup limits are honoured), at most [`MAX_WORKERS`].
pub(super) fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_WORKERS)
}

/// AES-GCM and BLAKE3 together run at several GB/s per core, so a few
/// cores saturate any link; more would only hold more buffers.
pub(super) const MAX_WORKERS: usize = 8;

/// Buffers per side: one per worker, one being filled by the reader, one
/// being written, and two spare so no stage waits on another's jitter.
/// Allocated as needed, so an unauthenticated header that declares 16 MiB
/// chunks costs one buffer until records actually arrive.
pub(super) fn buffer_count(workers: usize) -> usize {
    workers + 4
}

/// The queue the workers share.
pub(super) struct Jobs<T>(Mutex<Receiver<(u64, T)>>);

impl<T> Jobs<T> {
    pub(super) fn new(rx: Receiver<(u64, T)>) -> Jobs<T> {
        Jobs(Mutex::new(rx))
    }

    /// The next item, or `None` once the producer has stopped.
    pub(super) fn next(&self) -> Option<(u64, T)> {
        self.0.lock().ok()?.recv().ok()
    }
}

/// Hands the workers' results on in the order the items were numbered (0, 1, 2, …).
pub(super) struct InOrder<T> {
    rx: Receiver<(u64, T)>,
    next: u64,
    early: BTreeMap<u64, T>,
}

impl<T> InOrder<T> {
    pub(super) fn new(rx: Receiver<(u64, T)>) -> InOrder<T> {
        InOrder { rx, next: 0, early: BTreeMap::new() }
    }

    /// The next result in order, or `None` if every worker stopped before delivering it.
    pub(super) fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(item);
            }
            let (seq, item) = self.rx.recv().ok()?;
            self.early.insert(seq, item);
        }
    }
}

/// The stages of one side, started in `scope`: a reader thread making
/// numbered jobs (`read`, fed recycled buffers) and [`worker_count`] workers
/// running `work`; the caller takes the results in order and hands each
/// buffer back through the returned sender. The channels are the stages'
/// only link, so when the caller returns early they all stop before the
/// scope joins them.
pub(super) fn start_stages<'scope, In, Out>(
    scope: &'scope Scope<'scope, '_>,
    names: [&str; 2],
    read: impl FnOnce(usize, &Receiver<Vec<u8>>, &SyncSender<(u64, In)>) + Send + 'scope,
    work: impl Fn(&Jobs<In>, &Sender<(u64, Out)>) + Send + Sync + 'scope,
) -> Result<(InOrder<Out>, SyncSender<Vec<u8>>), StreamError>
where
    In: Send + 'scope,
    Out: Send + 'scope,
{
    let [reader_name, worker_name] = names;
    let workers = worker_count();
    let buffers = buffer_count(workers);
    let (job_tx, job_rx) = sync_channel::<(u64, In)>(buffers);
    let (done_tx, done_rx) = channel::<(u64, Out)>();
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    let jobs = Arc::new(Jobs::new(job_rx));
    let work = Arc::new(work);
    for _ in 0..workers {
        let (jobs, done, work) = (Arc::clone(&jobs), done_tx.clone(), Arc::clone(&work));
        std::thread::Builder::new()
            .name(worker_name.into())
            .spawn_scoped(scope, move || work(&jobs, &done))
            .map_err(StreamError::Spawn)?;
    }
    drop(done_tx);
    std::thread::Builder::new()
        .name(reader_name.into())
        .spawn_scoped(scope, move || read(buffers, &free_rx, &job_tx))
        .map_err(StreamError::Spawn)?;
    Ok((InOrder::new(done_rx), free_tx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn results_come_back_in_submission_order() {
        let (tx, rx) = channel();
        for seq in [3u64, 0, 2, 1, 4] {
            tx.send((seq, seq * 10)).unwrap();
        }
        drop(tx);
        let mut in_order = InOrder::new(rx);
        let got: Vec<u64> = std::iter::from_fn(|| in_order.next()).collect();
        assert_eq!(got, [0, 10, 20, 30, 40]);
    }

    #[test]
    fn a_gap_ends_the_sequence_when_the_workers_stop() {
        let (tx, rx) = channel();
        tx.send((0u64, 'a')).unwrap();
        tx.send((2u64, 'c')).unwrap();
        drop(tx);
        let mut in_order = InOrder::new(rx);
        assert_eq!(in_order.next(), Some('a'));
        assert_eq!(in_order.next(), None);
    }
}
