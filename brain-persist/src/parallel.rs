//! Frames processed on several threads, consumed in order on the caller's.
//!
//! Dump and restore work frame by frame: each frame is compressed or
//! decompressed independently (the costly part), then written in order (the
//! part that must stay sequential: the payload file, the object being
//! restored, the whole-payload checksum). [`ordered`] runs the first on
//! worker threads and hands the results to the caller in frame order, with
//! a bounded number of frames in flight so memory stays a few frames
//! whatever the object's size.

use std::sync::mpsc;
use std::sync::OnceLock;

use crate::error::Result;

/// Frames each worker may have finished ahead of the consumer.
const AHEAD: usize = 0;
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

/// Runs `work(state, i, &mut out)` for every frame `i` in `0..n`, on one
/// thread per element of `states` (each thread owns one state, a zstd
/// context say), and calls `sink(i, &mut out)` on the calling thread for
/// each frame in order. Buffers (`T`) go back to the worker that filled
/// them, so each worker allocates at most `AHEAD + 2`.
///
/// With one state or one frame, everything runs on the calling thread.
/// The first error (a worker's or the sink's, in frame order) stops the
/// work and is returned; frames after it may have been processed, but none
/// reaches the sink.
pub(crate) fn ordered<S, T>(
    n: usize,
    states: &mut [S],
    work: impl Fn(&mut S, usize, &mut T) -> Result<()> + Sync,
    mut sink: impl FnMut(usize, &mut T) -> Result<()>,
) -> Result<()>
where
    S: Send,
    T: Default + Send,
{
    assert!(!states.is_empty(), "ordered needs at least one state");
    if n <= 1 || states.len() == 1 {
        let first = &mut states[0];
        let mut out = T::default();
        for i in 0..n {
            work(first, i, &mut out)?;
            sink(i, &mut out)?;
        }
        return Ok(());
    }
    let count = states.len().min(n);
    std::thread::scope(|scope| {
        let mut lanes = Vec::with_capacity(count);
        for (k, state) in states.iter_mut().take(count).enumerate() {
            let (done_tx, done_rx) = mpsc::sync_channel::<Result<T>>(AHEAD);
            let (spare_tx, spare_rx) = mpsc::channel::<T>();
            let work = &work;
            scope.spawn(move || {
                for i in (k..n).step_by(count) {
                    let mut out = spare_rx.try_recv().unwrap_or_default();
                    let result = work(state, i, &mut out).map(|()| out);
                    let failed = result.is_err();
                    // The consumer hung up (it failed): stop.
                    if done_tx.send(result).is_err() || failed {
                        return;
                    }
                }
            });
            lanes.push((done_rx, spare_tx));
        }
        let result = (0..n).try_for_each(|i| {
            let (done, spare) = &lanes[i % count];
            let mut out = done
                .recv()
                .expect("a worker sends every frame or an error")?;
            sink(i, &mut out)?;
            // The worker may have finished its last frame: nothing to reuse then.
            let _ = spare.send(out);
            Ok(())
        });
        // Workers blocked on a full channel see it closed and stop.
        drop(lanes);
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
                )
                .unwrap();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
                assert_eq!(states.iter().sum::<u64>(), n as u64);
            }
        }
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
            )
            .unwrap_err();
            assert!(err.to_string().contains("frame 7"), "{err}");
            assert_eq!(seen, (0..7).collect::<Vec<_>>());

            let err = ordered(
                100,
                &mut states,
                |_, _, _: &mut u8| Ok(()),
                |i, _| if i == 3 { Err(failure(i)) } else { Ok(()) },
            )
            .unwrap_err();
            assert!(err.to_string().contains("frame 3"), "{err}");
        }
    }
}
