//! The broker's symmetric secrets and its epoch values (our deviation 17:
//! one Diffie–Hellman per (service, epoch) instead of one per ticket).
//!
//! ```text
//! master (a broker keyring key) ──HKDF──▶ K_tgt, epoch seed, anonymous-ID secret
//! epoch e = ⌊now / 86400⌋;  b_e = HKDF(epoch seed; e) (256 bits);  B_e = g^b_e
//! broker:  K_k,e = HKDF(P_k^b_e; B_e ‖ ID_k ‖ e)   cached per (ID_k, P_k, e)
//! service: K_k,e = HKDF(B_e^r_k; B_e ‖ ID_k ‖ e)   cached per (e, B_e)
//! ```
//!
//! Every replica holding the same keyring derives the same b_e, so tickets
//! from any replica open at any service, and no replica keeps state another
//! needs. The caches only save exponentiations.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use crate::group::Element;
use zeroize::Zeroizing;

use crate::sso::error::SsoError;
use crate::sso::primitives::{Lp, Scalar, group, hkdf32};

/// Length of a broker epoch (one day).
pub const EPOCH_SECONDS: i64 = 86_400;

/// Entries a key cache holds before it starts over.
const CACHE_LIMIT: usize = 4096;

/// The epoch of `now`.
pub fn epoch_of(now: i64) -> i64 {
    now.div_euclid(EPOCH_SECONDS)
}

/// K_tgt, the epoch seed and the anonymous-ID secret, derived from a broker
/// keyring key.
pub struct BrokerSecrets {
    tgt: Zeroizing<[u8; 32]>,
    epoch_seed: Zeroizing<[u8; 32]>,
    anon: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for BrokerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerSecrets(<redacted>)")
    }
}

impl BrokerSecrets {
    /// Derives the three secrets from `master` (at least 32 bytes).
    pub fn derive(master: &[u8]) -> Result<Self, SsoError> {
        if master.len() < 32 {
            return Err(SsoError::Internal("broker master key shorter than 32 bytes"));
        }
        let d = |label: &str| hkdf32(master, Lp::sso("broker secret").part(label.as_bytes()).bytes());
        Ok(BrokerSecrets { tgt: d("K_tgt")?, epoch_seed: d("epoch seed")?, anon: d("anonymous id")? })
    }

    pub(crate) fn tgt(&self) -> &[u8; 32] {
        &self.tgt
    }

    pub(crate) fn anon(&self) -> &[u8; 32] {
        &self.anon
    }

    /// (b_e, B_e).
    fn epoch_value(&self, epoch: i64) -> Result<(Scalar, Element), SsoError> {
        let raw = hkdf32(self.epoch_seed.as_slice(), Lp::sso("epoch secret").int(epoch).bytes())?;
        // 32 bytes < q: the value is the 256-bit short exponent itself.
        let b = Scalar::from_bytes_mod_q(raw.as_slice())?;
        let big_b = b.public()?;
        Ok((b, big_b))
    }
}

/// K_k,e from the shared value (P_k^b = B^r_k).
pub(crate) fn service_epoch_key(
    shared: &Element,
    big_b: &[u8],
    id_k: &str,
    epoch: i64,
) -> Result<Zeroizing<[u8; 32]>, SsoError> {
    hkdf32(shared.as_bytes(), Lp::sso("service epoch key").part(big_b).part(id_k.as_bytes()).int(epoch).bytes())
}

type ServiceKeyId = (i64, String);

/// The broker's caches: (b_e, B_e) per epoch and K_k,e per (e, ID_k, P_k).
#[derive(Default)]
pub struct EpochKeys {
    inner: Mutex<EpochCache>,
}

#[derive(Default)]
struct EpochCache {
    epochs: HashMap<i64, (Scalar, Vec<u8>)>,
    /// (e, ID_k) → (P_k it was made for, K_k,e).
    services: HashMap<ServiceKeyId, (Vec<u8>, Zeroizing<[u8; 32]>)>,
}

impl fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochKeys(<cache>)")
    }
}

impl EpochKeys {
    /// (B_e, K_k,e) for `id_k` with `p_k` in epoch `epoch`.
    pub(crate) fn service_key(
        &self,
        secrets: &BrokerSecrets,
        epoch: i64,
        id_k: &str,
        p_k: &Element,
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), SsoError> {
        let mut c = self.inner.lock().map_err(|_| SsoError::Internal("epoch cache poisoned"))?;
        if !c.epochs.contains_key(&epoch) {
            // Keep the previous epoch for tickets issued around midnight.
            c.epochs.retain(|e, _| *e >= epoch.saturating_sub(1));
            c.services.retain(|(e, _), _| *e >= epoch.saturating_sub(1));
            let (b, big_b) = secrets.epoch_value(epoch)?;
            c.epochs.insert(epoch, (b, big_b.to_bytes()));
        }
        let id = (epoch, id_k.to_owned());
        // A re-registered service (new P_k) misses and is recomputed.
        if let Some((_, k)) = c.services.get(&id).filter(|(p, _)| p.as_slice() == p_k.as_bytes()) {
            let big_b = c.epochs.get(&epoch).map(|(_, bb)| bb.clone()).ok_or(SsoError::Internal("epoch cache"))?;
            return Ok((big_b, k.clone()));
        }
        let (b, big_b) = c.epochs.get(&epoch).ok_or(SsoError::Internal("epoch cache"))?;
        let big_b = big_b.clone();
        let shared = Zeroizing::new(group().exp(p_k, &b.to_exponent()?)?);
        let k = service_epoch_key(&shared, &big_b, id_k, epoch)?;
        if c.services.len() >= CACHE_LIMIT {
            c.services.clear();
        }
        c.services.insert(id, (p_k.to_bytes(), k.clone()));
        Ok((big_b, k))
    }
}

/// (e, B_e).
type EpochValueId = (i64, Vec<u8>);

/// A service's cache: K_k,e per (e, B_e).
#[derive(Default)]
pub struct ServiceEpochCache {
    inner: Mutex<HashMap<EpochValueId, Zeroizing<[u8; 32]>>>,
}

impl fmt::Debug for ServiceEpochCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceEpochCache(<cache>)")
    }
}

impl ServiceEpochCache {
    /// K_k,e, computing B^r_k on a miss. `big_b` must already be validated
    /// (it is: it comes from a signed ticket, and is decoded with the
    /// subgroup checks before the exponentiation).
    pub(crate) fn key(
        &self,
        r_k: &Scalar,
        id_k: &str,
        epoch: i64,
        big_b: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, SsoError> {
        let id = (epoch, big_b.to_vec());
        if let Some(k) = self.inner.lock().map_err(|_| SsoError::Internal("epoch cache poisoned"))?.get(&id) {
            return Ok(k.clone());
        }
        let b = group().decode(big_b)?;
        let shared = Zeroizing::new(group().exp(&b, &r_k.to_exponent()?)?);
        let k = service_epoch_key(&shared, big_b, id_k, epoch)?;
        let mut c = self.inner.lock().map_err(|_| SsoError::Internal("epoch cache poisoned"))?;
        if c.len() >= 64 {
            c.clear();
        }
        c.insert(id, k.clone());
        Ok(k)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
