//! Which redis-rs client brain-redis is built on: a GET of an 8 MiB and of a
//! 512 MiB value through the synchronous `Connection` and through the async
//! multiplexed connection on a current-thread runtime, interleaved, medians.
//! `brain-bench/redis_bench.py --clients` runs it beside redis-py with
//! hiredis on the same server.
//!
//! ```text
//! redis_client PORT [REPEATS]
//! ```

use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: redis_client PORT [REPEATS]")?
        .parse()?;
    let repeats: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut sync = client.get_connection()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut multiplexed =
        runtime.block_on(client.get_multiplexed_async_connection_with_config(&config))?;
    for (key, size) in [("client-8m", 8usize << 20), ("client-512m", 512 << 20)] {
        redis::cmd("SET")
            .arg(key)
            .arg(vec![7u8; size])
            .exec(&mut sync)?;
        let (mut sync_times, mut async_times) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            let started = Instant::now();
            let value: Vec<u8> = redis::cmd("GET").arg(key).query(&mut sync)?;
            sync_times.push(started.elapsed().as_secs_f64());
            assert_eq!(value.len(), size);
            drop(value);
            let started = Instant::now();
            let value: Vec<u8> =
                runtime.block_on(redis::cmd("GET").arg(key).query_async(&mut multiplexed))?;
            async_times.push(started.elapsed().as_secs_f64());
            assert_eq!(value.len(), size);
        }
        redis::cmd("DEL").arg(key).exec(&mut sync)?;
        println!(
            "{} {:.6} {:.6}",
            size >> 20,
            median(sync_times),
            median(async_times)
        );
    }
    Ok(())
}
