//! Where handshakes compute: a few threads off the async runtime, so that signing and key
//! encapsulation (hundreds of microseconds with ML-DSA, seconds with SPHINCS+) never stall
//! the tasks that move established sessions' data.
//!
//! On a concentrator the threads run at a lower scheduling priority (`nice`), so under a
//! flood of handshakes the established sessions keep the CPU first; and work for a
//! handshake already under way (its second and third packets, which have cost a signature
//! already) is taken before a new connect request, so that overload slows new handshakes
//! down instead of letting every handshake miss its deadline.
//!
//! Written here rather than taken from a crate: the thread pools of the field (rayon,
//! tokio's blocking pool) have neither priorities between jobs nor a `nice` setting.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queues {
    /// Work for handshakes under way.
    urgent: VecDeque<Job>,
    /// New connect requests.
    new: VecDeque<Job>,
    stop: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

/// A handle to the pool; cheap to clone. The threads stop when the last handle is dropped.
#[derive(Clone)]
pub struct HandshakePool {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.queues.lock().stop = true;
        self.0.ready.notify_all();
    }
}

/// Stack for the threads: McEliece and SPHINCS+ keep large values on the stack.
const STACK: usize = 64 << 20;

/// Whether a job continues a handshake or starts one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// A handshake already under way.
    Urgent,
    /// A new connect request (or a client's first packet).
    New,
}

impl HandshakePool {
    /// `threads` threads (at least one) at `nice` (0: as the process; 1..=19: lower).
    pub fn new(threads: usize, nice: i32) -> std::io::Result<HandshakePool> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("dktp-handshake-{i}"))
                .stack_size(STACK)
                .spawn(move || {
                    if nice > 0 {
                        lower_priority(nice);
                    }
                    worker(&shared);
                })?;
        }
        Ok(HandshakePool {
            _stop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    /// A pool with one thread per core.
    pub fn per_core(nice: i32) -> std::io::Result<HandshakePool> {
        HandshakePool::new(
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            nice,
        )
    }

    /// Jobs waiting (both queues).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        let q = self.shared.queues.lock();
        q.urgent.len() + q.new.len()
    }

    /// Runs `f` on the pool and waits for its result; `None` if the pool stopped first.
    pub async fn run<T: Send + 'static>(
        &self,
        priority: Priority,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        {
            let mut q = self.shared.queues.lock();
            if q.stop {
                return None;
            }
            match priority {
                Priority::Urgent => q.urgent.push_back(job),
                Priority::New => q.new.push_back(job),
            }
        }
        self.shared.ready.notify_one();
        rx.await.ok()
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut q = shared.queues.lock();
            loop {
                if q.stop {
                    return;
                }
                if let Some(j) = q.urgent.pop_front().or_else(|| q.new.pop_front()) {
                    break j;
                }
                shared.ready.wait(&mut q);
            }
        };
        job();
    }
}

/// Lowers this thread's scheduling priority (Linux: `nice` applies per thread).
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::debug!("handshake thread: setpriority({nice}): {e}");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urgent_work_goes_first_and_results_come_back() {
        let pool = HandshakePool::new(1, 5).expect("pool");
        // Hold the only thread while both queues fill.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let blocker = pool.run(Priority::New, move || hold_rx.recv().is_ok());
        let order = Arc::new(Mutex::new(Vec::new()));
        let o1 = order.clone();
        let o2 = order.clone();
        let first = pool.run(Priority::New, move || o1.lock().push("new"));
        let second = pool.run(Priority::Urgent, move || o2.lock().push("urgent"));
        let all = async {
            tokio::join!(blocker, first, second, async {
                // Let the three jobs reach the queues before the thread is released.
                while pool.queued() < 2 {
                    tokio::task::yield_now().await;
                }
                hold_tx.send(()).expect("release");
            })
        };
        let (b, f, s, ()) = all.await;
        assert_eq!((b, f, s), (Some(true), Some(()), Some(())));
        assert_eq!(*order.lock(), vec!["urgent", "new"]);
    }
}
