//! A pool of pre-generated one-use (ephemeral) KEM key pairs.
//!
//! The handshake needs a fresh KEM key pair per connection (connect response, exchange
//! request) and per asymmetric ratchet. For McEliece that costs tens to hundreds of
//! milliseconds, so a server keeps a few ready: a background thread refills the pool up to
//! its capacity, [`KeyPool::take`] hands each pair out once (moved out of the pool, so it
//! is never shared) and falls back to generating inline when the pool is empty. Key pairs
//! still pooled when the pool is dropped are zeroized with it ([`crate::pq::KemSecretKey`]
//! zeroizes on drop).
//!
//! This is the one place the engine runs threads and draws OS randomness by itself
//! ([`OsEntropy`]); it sits behind the default `pool` feature. Without it, and on wasm32,
//! the same API generates inline.

use crate::pq::{Entropy, KemAlg, KemKeyPair, OsEntropy, PqError};
use core::fmt;

#[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
};

/// Stack for the refill thread: McEliece key generation keeps large matrices on the stack.
pub const WORKER_STACK: usize = 64 << 20;

#[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
struct Shared {
    state: Mutex<State>,
    /// Signals the worker that a key was taken (or that it should stop).
    wake: Condvar,
    /// Signals waiters that a key was added.
    filled: Condvar,
}

#[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
struct State {
    keys: VecDeque<KemKeyPair>,
    stop: bool,
    failed: Option<PqError>,
}

/// Pre-generated ephemeral key pairs for one KEM parameter set.
pub struct KeyPool {
    alg: KemAlg,
    capacity: usize,
    #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
    shared: Arc<Shared>,
    #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPool")
            .field("alg", &self.alg)
            .field("capacity", &self.capacity)
            .field("ready", &self.len())
            .finish()
    }
}

impl KeyPool {
    /// Starts a pool holding up to `capacity` key pairs of `alg`, refilled in the background.
    pub fn new(alg: KemAlg, capacity: usize) -> Result<KeyPool, PqError> {
        #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
        {
            let shared = Arc::new(Shared {
                state: Mutex::new(State {
                    keys: VecDeque::with_capacity(capacity),
                    stop: false,
                    failed: None,
                }),
                wake: Condvar::new(),
                filled: Condvar::new(),
            });
            let worker = if capacity > 0 {
                let s = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name(format!("dktp-keypool-{}", alg.token()))
                    .stack_size(WORKER_STACK)
                    .spawn(move || refill(alg, capacity, &s))
                    .map_err(|_| PqError::Unsupported {
                        alg: alg.name(),
                        reason: "cannot start the key-pool thread",
                    })?;
                Some(handle)
            } else {
                None
            };
            Ok(KeyPool {
                alg,
                capacity,
                shared,
                worker,
            })
        }
        #[cfg(not(all(feature = "pool", not(target_arch = "wasm32"))))]
        {
            Ok(KeyPool { alg, capacity })
        }
    }

    /// The parameter set.
    pub fn alg(&self) -> KemAlg {
        self.alg
    }

    /// Key pairs ready now.
    pub fn len(&self) -> usize {
        #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
        {
            self.shared.state.lock().map(|s| s.keys.len()).unwrap_or(0)
        }
        #[cfg(not(all(feature = "pool", not(target_arch = "wasm32"))))]
        {
            0
        }
    }

    /// Whether no key pair is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a ready key pair, or generates one inline from `rng` when the pool is empty.
    pub fn take(&self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError> {
        #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
        {
            let popped = match self.shared.state.lock() {
                Ok(mut s) => s.keys.pop_front(),
                Err(_) => None,
            };
            self.shared.wake.notify_one();
            if let Some(kp) = popped {
                return Ok(kp);
            }
        }
        self.alg.generate_ephemeral(rng)
    }

    /// Waits until `n` key pairs are ready (or the worker failed); for warm-up at start.
    pub fn wait_ready(&self, n: usize) -> Result<(), PqError> {
        #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
        {
            let n = n.min(self.capacity);
            let mut s = self.shared.state.lock().map_err(|_| PqError::Random)?;
            while s.keys.len() < n {
                if let Some(e) = s.failed.clone() {
                    return Err(e);
                }
                s = self.shared.filled.wait(s).map_err(|_| PqError::Random)?;
            }
            Ok(())
        }
        #[cfg(not(all(feature = "pool", not(target_arch = "wasm32"))))]
        {
            let _ = n;
            Ok(())
        }
    }
}

/// The refill loop: generate while below capacity, sleep while full.
#[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
fn refill(alg: KemAlg, capacity: usize, shared: &Shared) {
    loop {
        {
            let Ok(mut s) = shared.state.lock() else {
                return;
            };
            while !s.stop && s.keys.len() >= capacity {
                s = match shared.wake.wait(s) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
            if s.stop {
                return;
            }
        }
        let kp = alg.generate_ephemeral(&mut OsEntropy);
        let Ok(mut s) = shared.state.lock() else {
            return;
        };
        match kp {
            Ok(kp) => s.keys.push_back(kp),
            Err(e) => {
                s.failed = Some(e);
                shared.filled.notify_all();
                return;
            }
        }
        shared.filled.notify_all();
    }
}

impl Drop for KeyPool {
    fn drop(&mut self) {
        #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
        {
            if let Ok(mut s) = self.shared.state.lock() {
                s.stop = true;
                // Pooled secrets are zeroized here, as they drop.
                s.keys.clear();
            }
            self.shared.wake.notify_all();
            if let Some(w) = self.worker.take() {
                let _ = w.join();
            }
        }
    }
}

/// Convenience: a pool drawing from the OS when it must generate inline.
impl KeyPool {
    /// [`KeyPool::take`] with [`OsEntropy`].
    pub fn take_os(&self) -> Result<KemKeyPair, PqError> {
        self.take(&mut OsEntropy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    #[cfg(all(feature = "pool", not(target_arch = "wasm32")))]
    fn warm_mceliece_take_is_fast_and_keys_are_distinct() {
        let alg = KemAlg::McEliece348864;
        let pool = KeyPool::new(alg, 3).unwrap();
        pool.wait_ready(3).unwrap();
        assert_eq!(pool.len(), 3);
        let t = Instant::now();
        let a = pool.take_os().unwrap();
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1), "warm take took {took:?}");
        let b = pool.take_os().unwrap();
        assert_ne!(a.public, b.public, "each key pair is handed out once");
        // The pair works.
        let (ct, ss) = alg.encapsulate(&a.public, &mut OsEntropy).unwrap();
        assert_eq!(alg.decapsulate(&a.secret, &ct).unwrap(), ss);
        // The pool refills in the background.
        pool.wait_ready(3).unwrap();
        eprintln!("warm McEliece-348864 take: {took:?}");
    }

    #[test]
    fn empty_pool_generates_inline() {
        let pool = KeyPool::new(KemAlg::MlKem768, 0).unwrap();
        assert!(pool.is_empty());
        let kp = pool.take_os().unwrap();
        assert_eq!(kp.public.len(), KemAlg::MlKem768.sizes().public_key);
        assert!(format!("{pool:?}").contains("MlKem768"));
    }
}
