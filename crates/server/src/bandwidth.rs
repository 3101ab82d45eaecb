//! Bandwidth limits on agents' uploads, with a work-hours schedule (the
//! MARS agent's throttling): each agent, and all agents together, may send
//! at one rate in work hours and another outside them.
//!
//! The limit is applied where the service reads an upload's body: a piece
//! is taken from the connection only once both the agent's bucket and the
//! overall bucket have room for it, so a limited agent is slowed by TCP's
//! own flow control and nothing piles up in the service's memory. Buckets
//! are `governor` rate limiters holding one second's worth of bytes; they
//! are made anew when the rate that applies changes (at the edge of work
//! hours, or when an administrator changes the limits).
//!
//! The limits are kept in the settings table as JSON and carried by a
//! cloud recovery with the rest of the service's configuration.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};

use coffer_api_types::agent::{BandwidthLimits, Rates};
use coffer_engine::policy::{TimeOfDay, Weekday};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::{Error, Result};

/// The settings key the limits are kept under.
const SETTING: &str = "agent_bandwidth";

/// Limits, checked: what an administrator gave, with its parts parsed.
#[derive(Debug, Clone)]
pub struct Limits {
    given: BandwidthLimits,
    days: Vec<Weekday>,
    start: TimeOfDay,
    end: TimeOfDay,
    zone: TimeZone,
}

impl Limits {
    /// Checks every field; the message names the field and what is allowed.
    pub fn check(given: BandwidthLimits) -> Result<Limits> {
        let days = given
            .work_days
            .iter()
            .map(|d| Weekday::parse(d).map_err(|m| Error::invalid("work_days", m)))
            .collect::<Result<Vec<_>>>()?;
        let start =
            TimeOfDay::parse(&given.work_start).map_err(|m| Error::invalid("work_start", m))?;
        let end = TimeOfDay::parse(&given.work_end).map_err(|m| Error::invalid("work_end", m))?;
        if end <= start {
            return Err(Error::invalid(
                "work_end",
                format!(
                    "work hours end ({end}) must come after they start ({start}) on the same day"
                ),
            ));
        }
        let zone = TimeZone::get(&given.time_zone).map_err(|_| {
            Error::invalid(
                "time_zone",
                format!(
                    "{:?} is not a known IANA time zone name (for example UTC or Europe/Stockholm)",
                    given.time_zone
                ),
            )
        })?;
        let rates = [given.per_agent, given.overall]
            .into_iter()
            .chain(given.agents.iter().map(|a| a.rates));
        for rate in rates.flat_map(|r| [r.work_hours, r.other_hours]).flatten() {
            if rate < MIN_RATE {
                return Err(Error::invalid(
                    "rates",
                    format!("{rate} bytes per second is below the least rate, {MIN_RATE} (8 KiB/s); leave a rate out for no limit"),
                ));
            }
        }
        Ok(Limits {
            given,
            days,
            start,
            end,
            zone,
        })
    }

    pub fn given(&self) -> &BandwidthLimits {
        &self.given
    }

    /// Whether `at` falls in work hours, on the wall clock of the limits'
    /// time zone.
    pub fn in_work_hours(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let day = Weekday::ALL[local.weekday().to_monday_zero_offset() as usize];
        let now = TimeOfDay {
            hour: local.hour() as u8,
            minute: local.minute() as u8,
        };
        self.days.contains(&day) && self.start <= now && now < self.end
    }

    /// The rates that apply to `agent` and to all agents at `at`.
    pub fn rates_at(&self, agent: &str, at: Timestamp) -> (Option<u64>, Option<u64>) {
        let own = self
            .given
            .agents
            .iter()
            .find(|a| a.agent == agent)
            .map_or(self.given.per_agent, |a| a.rates);
        let overall = self.given.overall;
        // Every piece of every upload asks: without a limit, no clock.
        if [own, overall] == [Rates::default(); 2] {
            return (None, None);
        }
        let work = self.in_work_hours(at);
        let pick = |r: Rates| if work { r.work_hours } else { r.other_hours };
        (pick(own), pick(overall))
    }
}

/// Below this a piece of an upload waits seconds; it is more likely a typo.
const MIN_RATE: u64 = 8 << 10;

type Bucket = (u64, Arc<DefaultDirectRateLimiter>);

/// The limits in force and the buckets that apply them.
pub struct Throttle {
    limits: RwLock<Limits>,
    agents: Mutex<HashMap<String, Bucket>>,
    overall: Mutex<Option<Bucket>>,
}

impl Throttle {
    /// The limits the settings hold, or none.
    pub fn load(db: &crate::db::Db) -> Result<Throttle> {
        let given = match db.setting(SETTING)? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| Error::Internal(format!("stored bandwidth limits: {e}")))?,
            None => BandwidthLimits::default(),
        };
        Ok(Throttle {
            limits: RwLock::new(Limits::check(given)?),
            agents: Mutex::new(HashMap::new()),
            overall: Mutex::new(None),
        })
    }

    pub fn limits(&self) -> BandwidthLimits {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .given()
            .clone()
    }

    /// Checks, stores and applies new limits.
    pub fn set(&self, db: &crate::db::Db, given: BandwidthLimits) -> Result<BandwidthLimits> {
        Limits::check(given.clone())?;
        db.set_setting(SETTING, &as_json(&given)?)?;
        self.adopt(given.clone())?;
        Ok(given)
    }

    /// Applies limits already stored (by a recovery's transaction).
    pub fn adopt(&self, given: BandwidthLimits) -> Result<()> {
        let checked = Limits::check(given)?;
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = checked;
        Ok(())
    }

    /// Waits until `agent` may send `bytes` more.
    pub async fn pass(&self, agent: &str, bytes: usize) {
        let (own, all) = self
            .limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .rates_at(agent, Timestamp::now());
        let own = own.map(|rate| {
            let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
            bucket(
                agents
                    .entry(agent.to_string())
                    .or_insert_with(|| fresh(rate)),
                rate,
            )
        });
        let all = all.map(|rate| {
            let mut overall = self.overall.lock().unwrap_or_else(|p| p.into_inner());
            bucket(overall.get_or_insert_with(|| fresh(rate)), rate)
        });
        for bucket in [own, all].into_iter().flatten() {
            take(&bucket, bytes).await;
        }
    }

    /// Forgets a removed agent: its bucket and any rates of its own.
    pub fn forget(&self, db: &crate::db::Db, agent: &str) -> Result<()> {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent);
        let mut given = self.limits();
        if given.agents.iter().any(|a| a.agent == agent) {
            given.agents.retain(|a| a.agent != agent);
            self.set(db, given)?;
        }
        Ok(())
    }
}

fn as_json(given: &BandwidthLimits) -> Result<String> {
    serde_json::to_string(given).map_err(|e| Error::Internal(e.to_string()))
}

/// Stores limits within a transaction (a recovery's).
pub fn store_in(tx: &rusqlite::Transaction<'_>, given: &BandwidthLimits) -> Result<()> {
    crate::db::put_setting(tx, SETTING, &as_json(given)?)
}

/// The bucket for `rate`, made anew when the rate changed, with what it holds.
fn bucket(slot: &mut Bucket, rate: u64) -> (Arc<DefaultDirectRateLimiter>, u32) {
    if slot.0 != rate {
        *slot = fresh(rate);
    }
    (slot.1.clone(), capacity(rate))
}

/// One second's worth of `rate`, as many cells as a bucket can hold.
fn capacity(rate: u64) -> u32 {
    rate.clamp(1, u32::MAX as u64) as u32
}

fn fresh(rate: u64) -> Bucket {
    let per_second = NonZeroU32::new(capacity(rate)).unwrap_or(NonZeroU32::MIN);
    (
        rate,
        Arc::new(RateLimiter::direct(Quota::per_second(per_second))),
    )
}

/// Takes `bytes` from a bucket, in pieces no larger than it holds.
async fn take((limiter, capacity): &(Arc<DefaultDirectRateLimiter>, u32), bytes: usize) {
    let mut left = bytes;
    while left > 0 {
        let piece = left.min(*capacity as usize);
        if let Some(cells) = NonZeroU32::new(piece as u32) {
            // Never more than the bucket holds, so never refused.
            let _ = limiter.until_n_ready(cells).await;
        }
        left -= piece;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api_types::agent::AgentRates;

    fn limits() -> Limits {
        Limits::check(BandwidthLimits {
            time_zone: "Europe/Stockholm".into(),
            per_agent: Rates {
                work_hours: Some(4 << 20),
                other_hours: None,
            },
            overall: Rates {
                work_hours: Some(20 << 20),
                other_hours: Some(100 << 20),
            },
            agents: vec![AgentRates {
                agent: "db1".into(),
                rates: Rates {
                    work_hours: Some(1 << 20),
                    other_hours: Some(2 << 20),
                },
            }],
            ..BandwidthLimits::default()
        })
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn work_hours_are_read_on_the_wall_clock_of_the_limits_zone() {
        let l = limits();
        // Monday 2026-12-07, Stockholm is UTC+1 in winter.
        assert!(!l.in_work_hours(at("2026-12-07T06:59:00Z")));
        assert!(l.in_work_hours(at("2026-12-07T07:00:00Z")));
        assert!(l.in_work_hours(at("2026-12-07T16:59:59Z")));
        assert!(!l.in_work_hours(at("2026-12-07T17:00:00Z")));
        // Saturday: no work hours.
        assert!(!l.in_work_hours(at("2026-12-12T10:00:00Z")));
        // Summer time: UTC+2.
        assert!(l.in_work_hours(at("2026-06-08T06:00:00Z")));
    }

    #[test]
    fn an_agent_gets_its_own_rates_or_the_shared_ones() {
        let l = limits();
        let work = at("2026-12-07T10:00:00Z");
        let night = at("2026-12-07T23:00:00Z");
        assert_eq!(l.rates_at("web", work), (Some(4 << 20), Some(20 << 20)));
        assert_eq!(l.rates_at("web", night), (None, Some(100 << 20)));
        assert_eq!(l.rates_at("db1", work), (Some(1 << 20), Some(20 << 20)));
        assert_eq!(l.rates_at("db1", night), (Some(2 << 20), Some(100 << 20)));
    }

    #[test]
    fn bad_limits_are_refused_with_the_field_named() {
        let bad = |f: fn(&mut BandwidthLimits)| {
            let mut l = BandwidthLimits::default();
            f(&mut l);
            Limits::check(l).unwrap_err().to_string()
        };
        assert!(bad(|l| l.work_days.push("someday".into())).contains("someday"));
        assert!(bad(|l| l.work_end = "07:00".into()).contains("after"));
        assert!(bad(|l| l.work_start = "8am".into()).contains("HH:MM"));
        assert!(bad(|l| l.time_zone = "Mars/Olympus".into()).contains("time zone"));
        assert!(bad(|l| l.per_agent.work_hours = Some(10)).contains("least rate"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_limited_agent_waits_for_its_bytes_and_an_unlimited_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("s.sqlite")).unwrap();
        let throttle = Throttle::load(&db).unwrap();
        let rate = 256u64 << 10;
        let limited = Rates {
            work_hours: Some(rate),
            other_hours: Some(rate),
        };
        throttle
            .set(
                &db,
                BandwidthLimits {
                    agents: vec![AgentRates {
                        agent: "slow".into(),
                        rates: limited,
                    }],
                    ..BandwidthLimits::default()
                },
            )
            .unwrap();
        let started = std::time::Instant::now();
        // A second's worth at once, then two more: at least two seconds.
        for _ in 0..12 {
            throttle.pass("slow", (rate / 4) as usize).await;
        }
        assert!(started.elapsed() >= std::time::Duration::from_millis(1900));
        let started = std::time::Instant::now();
        throttle.pass("fast", 1 << 30).await;
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        // Stored: a new throttle reads the same limits.
        assert_eq!(Throttle::load(&db).unwrap().limits(), throttle.limits());
    }
}
