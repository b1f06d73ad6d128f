//! Services that act beside the dirbroker broker: the AMS and ANS agent
//! services of the SSO paper (seed 002) and the VM-migration actors (admin
//! console, data center, physical server) of seeds 000/001. Each will run as
//! its own process and reach the broker and the directory through the
//! `dirbroker` library. Nothing lives here yet; see the open issues.
