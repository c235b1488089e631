//! Frames processed on several threads, consumed in order on the caller's.
//!
//! Dump and restore work frame by frame: each frame is compressed or
//! decompressed independently (the costly part), then written in order (the
//! part that must stay sequential: the payload file, the object being
//! restored, the whole-payload checksum). [`ordered`] runs the first on
//! worker threads and hands the results to the caller in frame order, with
//! a bounded number of frames in flight so memory stays a few frames
//! whatever the object's size.
//!
//! Workers take the next frame as soon as they are free, up to
//! [`IN_FLIGHT`] frames ahead of the caller: frames cost very different
//! amounts (a stored-as-is frame decodes ~10x faster than a compressed
//! one), and a worker stuck on a costly frame then holds up neither the
//! other workers nor the caller.

use std::sync::{mpsc, Condvar, Mutex, MutexGuard, OnceLock};

use crate::error::Result;

/// Frames taken by workers but not yet done with (consumed, and observed),
/// at most (or one per worker and one more, if that is more): the buffers
/// alive at once, 32 MiB with 4 MiB frames whatever the object's size.
pub(crate) const IN_FLIGHT: usize = 8;
/// More workers than this gain nothing: the consumer is the bound by then.
const MAX_WORKERS: usize = 8;

/// How many worker threads to use: one per core (read once; it reads
/// cgroup files), at most [`MAX_WORKERS`].
pub(crate) fn workers() -> usize {
    static WORKERS: OnceLock<usize> = OnceLock::new();
    *WORKERS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_WORKERS)
    })
}

/// What the workers and the consumer share.
struct State<T> {
    /// The next frame a worker will take.
    next: usize,
    /// Frames done with (all below this one): consumed, and observed when
    /// there is an observer. Their buffers are spare again.
    released: usize,
    /// Finished frames, at `i % slots.len()`.
    slots: Vec<Option<Result<T>>>,
    /// Buffers released, for workers to fill again.
    spare: Vec<T>,
    /// Set by the consumer when it stops early (an error): workers stop.
    stop: bool,
    /// Workers that have not returned yet (panicked ones included).
    running: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// A frame finished, or a worker returned.
    finished: Condvar,
    /// A frame was released, or the consumer stopped.
    room: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A thread that panicked holding the lock: its panic surfaces when
        // the scope joins it; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, i: usize, out: T) {
        let mut guard = self.lock();
        guard.released = i + 1;
        guard.spare.push(out);
        drop(guard);
        self.room.notify_all();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.room.notify_all();
    }
}

/// Counts a worker out when it returns or panics, and wakes the consumer.
struct Running<'a, T>(&'a Shared<T>);

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.finished.notify_all();
    }
}

/// Stops the workers if the thread holding it panics.
struct StopOnPanic<'a, T>(&'a Shared<T>);

impl<T> Drop for StopOnPanic<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Something run on every frame in order, after the sink, on a thread of
/// its own: a checksum of the whole payload, say, which then costs the
/// sink's thread nothing.
pub(crate) type Observer<'a, T> = &'a mut (dyn FnMut(usize, &T) + Send);

/// Runs `work(state, i, &mut out)` for every frame `i` in `0..n`, on one
/// thread per element of `states` (each thread owns one state, a zstd
/// context say), and calls `sink(i, &out)` on the calling thread for each
/// frame in order, then `observe(i, &out)` (when given) in order on a
/// thread of its own. Each worker takes the lowest frame not yet taken, at
/// most [`IN_FLIGHT`] frames ahead of the last one released; buffers (`T`)
/// are reused, so at most that many are allocated.
///
/// With one state or one frame, everything runs on the calling thread.
/// The first error (a worker's or the sink's, in frame order) stops the
/// work and is returned; frames after it may have been processed, but none
/// reaches the sink. Frames before it have been observed when this returns.
pub(crate) fn ordered<S, T>(
    n: usize,
    states: &mut [S],
    work: impl Fn(&mut S, usize, &mut T) -> Result<()> + Sync,
    mut sink: impl FnMut(usize, &T) -> Result<()>,
    mut observe: Option<Observer<'_, T>>,
) -> Result<()>
where
    S: Send,
    T: Default + Send + Sync,
{
    assert!(!states.is_empty(), "ordered needs at least one state");
    if n <= 1 || states.len() == 1 {
        let first = &mut states[0];
        let mut out = T::default();
        for i in 0..n {
            work(first, i, &mut out)?;
            sink(i, &out)?;
            if let Some(observe) = observe.as_mut() {
                observe(i, &out);
            }
        }
        return Ok(());
    }
    let count = states.len().min(n);
    let window = IN_FLIGHT.max(count + 1).min(n);
    let shared = Shared {
        state: Mutex::new(State {
            next: 0,
            released: 0,
            slots: (0..window).map(|_| None).collect(),
            spare: Vec::new(),
            stop: false,
            running: count,
        }),
        finished: Condvar::new(),
        room: Condvar::new(),
    };
    std::thread::scope(|scope| {
        for state in states.iter_mut().take(count) {
            let (shared, work) = (&shared, &work);
            scope.spawn(move || {
                let _running = Running(shared);
                loop {
                    let mut guard = shared.lock();
                    while !guard.stop && guard.next < n && guard.next >= guard.released + window {
                        guard = shared.room.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                    if guard.stop || guard.next >= n {
                        return;
                    }
                    let i = guard.next;
                    guard.next += 1;
                    let mut out = guard.spare.pop().unwrap_or_default();
                    drop(guard);
                    let result = work(state, i, &mut out).map(|()| out);
                    let failed = result.is_err();
                    shared.lock().slots[i % window] = Some(result);
                    shared.finished.notify_all();
                    if failed {
                        // The consumer stops when it reaches this frame.
                        return;
                    }
                }
            });
        }
        // Frames go to the observer in order; it releases them. Dropping
        // the sender (on return) ends it once it has seen every frame sent.
        let observed = observe.map(|observe| {
            let (tx, rx) = mpsc::channel::<(usize, T)>();
            let shared = &shared;
            scope.spawn(move || {
                // Should `observe` panic, the workers stop, and the consumer
                // with them, instead of waiting for room forever.
                let _stop = StopOnPanic(shared);
                for (i, out) in rx {
                    observe(i, &out);
                    shared.release(i, out);
                }
            });
            tx
        });
        let result = (0..n).try_for_each(|i| {
            let mut guard = shared.lock();
            let result = loop {
                if let Some(result) = guard.slots[i % window].take() {
                    break result;
                }
                // Every worker returned and frame i never came: one panicked
                // (the scope re-raises its panic).
                assert!(guard.running > 0, "a worker stopped before frame {i}");
                guard = shared
                    .finished
                    .wait(guard)
                    .unwrap_or_else(|e| e.into_inner());
            };
            drop(guard);
            let out = result?;
            sink(i, &out)?;
            match &observed {
                Some(tx) => tx
                    .send((i, out))
                    .expect("the observer runs until the sender is dropped"),
                None => shared.release(i, out),
            }
            Ok(())
        });
        if result.is_err() {
            shared.stop();
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn frames_arrive_in_order_whatever_the_workers() {
        for workers in [1, 2, 3, 8] {
            for n in [0, 1, 2, 5, 64] {
                let mut states = vec![0u64; workers];
                let mut seen = Vec::new();
                ordered(
                    n,
                    &mut states,
                    |calls, i, out: &mut Vec<usize>| {
                        *calls += 1;
                        out.clear();
                        out.push(i * 10);
                        Ok(())
                    },
                    |i, out| {
                        assert_eq!(out, &[i * 10]);
                        seen.push(i);
                        Ok(())
                    },
                    None,
                )
                .unwrap();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
                assert_eq!(states.iter().sum::<u64>(), n as u64);
            }
        }
    }

    /// Counts the buffers made.
    struct Counted(Vec<usize>);

    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl Default for Counted {
        fn default() -> Self {
            MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Counted(Vec::new())
        }
    }

    #[test]
    fn uneven_frames_keep_their_order_and_the_buffers_stay_bounded() {
        let mut states = vec![(); 3];
        let (mut sunk, mut observed) = (Vec::new(), Vec::new());
        ordered(
            200,
            &mut states,
            |_, i, out: &mut Counted| {
                // Every seventh frame is slow, as a compressed frame among
                // stored ones.
                if i % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                out.0.clear();
                out.0.push(i);
                Ok(())
            },
            |i, out| {
                assert_eq!(out.0, [i]);
                sunk.push(i);
                Ok(())
            },
            Some(&mut |i, out: &Counted| {
                assert_eq!(out.0, [i]);
                observed.push(i);
            }),
        )
        .unwrap();
        assert_eq!(sunk, (0..200).collect::<Vec<_>>());
        assert_eq!(observed, sunk);
        let made = MADE.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            made <= IN_FLIGHT,
            "{made} buffers for {IN_FLIGHT} frames in flight"
        );
    }

    #[test]
    fn the_observer_sees_every_frame_before_an_error() {
        let mut states = vec![(); 2];
        let mut observed = Vec::new();
        let err = ordered(
            50,
            &mut states,
            |_, i, _: &mut u8| if i == 20 { Err(failure(i)) } else { Ok(()) },
            |_, _| Ok(()),
            Some(&mut |i, _: &u8| observed.push(i)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("frame 20"), "{err}");
        assert_eq!(observed, (0..20).collect::<Vec<_>>());
    }

    fn failure(i: usize) -> Error {
        Error::io(
            "test",
            format!("frame {i}"),
            std::io::ErrorKind::Other.into(),
        )
    }

    #[test]
    fn the_first_error_in_order_wins_and_stops_the_sink() {
        for workers in [1, 2, 4] {
            let mut states = vec![(); workers];
            let mut seen = Vec::new();
            let err = ordered(
                100,
                &mut states,
                |_, i, _: &mut u8| {
                    if i == 7 || i == 9 {
                        Err(failure(i))
                    } else {
                        Ok(())
                    }
                },
                |i, _| {
                    seen.push(i);
                    Ok(())
                },
                None,
            )
            .unwrap_err();
            assert!(err.to_string().contains("frame 7"), "{err}");
            assert_eq!(seen, (0..7).collect::<Vec<_>>());

            let err = ordered(
                100,
                &mut states,
                |_, _, _: &mut u8| Ok(()),
                |i, _| if i == 3 { Err(failure(i)) } else { Ok(()) },
                None,
            )
            .unwrap_err();
            assert!(err.to_string().contains("frame 3"), "{err}");
        }
    }
}
