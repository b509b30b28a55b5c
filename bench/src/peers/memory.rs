//! The memory check: the command API touches many distinct streams (one restock each, over
//! HTTP, from `clients` concurrent callers) while its resident memory is sampled from
//! `/proc/<pid>/status` before, every `every` restocks, and after.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use uuid::Uuid;

use super::http::RestockApi;
use crate::procfs::Memory;
use crate::support::{closed_loop_until, LoadRun};

/// A memory sample after `touched` restocks were sent.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub touched: u64,
    pub seconds: f64,
    pub memory: Memory,
}

/// What the walk measured.
#[derive(Debug)]
pub struct Walk {
    pub before: Memory,
    pub during: Vec<Sample>,
    pub after: Memory,
    /// Again after a few idle seconds.
    pub settled: Memory,
    pub run: LoadRun,
    /// Whether it stopped at the deadline before touching every stream.
    pub cut_short: bool,
}

/// Restocks each of `ids` once through `api`, sampling the memory of process `pid`.
pub async fn walk(
    api: Arc<RestockApi>,
    pid: u32,
    ids: Arc<Vec<Uuid>>,
    clients: usize,
    every: u64,
    max: Duration,
) -> Result<Walk> {
    let before = Memory::of(pid)?;
    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let every = every.max(1);
    let run = {
        let samples = samples.clone();
        let ids = ids.clone();
        closed_loop_until(clients, ids.len() as u64, Some(started + max), move |i| {
            let api = api.clone();
            let samples = samples.clone();
            let id = ids[i as usize];
            async move {
                api.restock(id).await?;
                if (i + 1) % every == 0 {
                    let memory = Memory::of(pid)?;
                    if let Ok(mut samples) = samples.lock() {
                        samples.push(Sample {
                            touched: i + 1,
                            seconds: started.elapsed().as_secs_f64(),
                            memory,
                        });
                    }
                }
                Ok(())
            }
        })
        .await
    };
    let after = Memory::of(pid)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = Memory::of(pid)?;
    let mut during = samples.lock().map(|s| s.clone()).unwrap_or_default();
    during.sort_by_key(|s| s.touched);
    let cut_short = run.ok + run.failed < ids.len() as u64;
    Ok(Walk {
        before,
        during,
        after,
        settled,
        run,
        cut_short,
    })
}
