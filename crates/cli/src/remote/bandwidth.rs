//! `coffer --server URL agent bandwidth`: how fast agents' backups may send
//! data into the service, in and out of work hours, per agent and for all
//! together. Without options it shows the limits; each option changes one
//! part and leaves the others as they are.

use anyhow::{bail, Result};
use clap::Args;

use coffer_api_types::agent::{AgentRates, BandwidthLimits, Rates};

use super::client::Client;
use super::print;

#[derive(Args)]
pub(super) struct BandwidthArgs {
    /// Each agent's rates: WORK/OTHER, each like 4M, 512K, 1G (bytes per
    /// second) or unlimited; one rate means both.
    #[arg(long, value_name = "WORK/OTHER")]
    per_agent: Option<String>,
    /// All agents together: WORK/OTHER.
    #[arg(long, value_name = "WORK/OTHER")]
    overall: Option<String>,
    /// Work hours on the work days, like 08:00-18:00.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    work_hours: Option<String>,
    /// Work days, like mon,tue,wed,thu,fri (or none).
    #[arg(long, value_name = "DAYS")]
    work_days: Option<String>,
    /// The IANA time zone work hours are read in.
    #[arg(long)]
    time_zone: Option<String>,
    /// Give one agent its own rates (with --rates WORK/OTHER, or
    /// --rates shared to follow --per-agent again).
    #[arg(long, requires = "rates")]
    agent: Option<String>,
    #[arg(long, value_name = "WORK/OTHER", requires = "agent")]
    rates: Option<String>,
}

pub(super) fn run(client: &Client, json: bool, args: BandwidthArgs) -> Result<()> {
    let mut limits: BandwidthLimits = client.get_as("/agents/bandwidth")?;
    let before = limits.clone();
    change(&mut limits, args)?;
    if limits != before {
        limits = client.put_as("/agents/bandwidth", &limits)?;
    }
    print(json, &limits, |l| {
        println!(
            "work hours {}-{} on {} ({})",
            l.work_start,
            l.work_end,
            if l.work_days.is_empty() {
                "no day".to_string()
            } else {
                l.work_days.join(",")
            },
            l.time_zone
        );
        println!("each agent: {}", shown(l.per_agent));
        println!("all agents: {}", shown(l.overall));
        for a in &l.agents {
            println!("agent {}: {}", a.agent, shown(a.rates));
        }
    });
    Ok(())
}

fn change(limits: &mut BandwidthLimits, args: BandwidthArgs) -> Result<()> {
    if let Some(r) = args.per_agent {
        limits.per_agent = rates(&r)?;
    }
    if let Some(r) = args.overall {
        limits.overall = rates(&r)?;
    }
    if let Some(hours) = args.work_hours {
        let Some((start, end)) = hours.split_once('-') else {
            bail!("--work-hours {hours:?}: write it as HH:MM-HH:MM, like 08:00-18:00");
        };
        limits.work_start = start.trim().to_string();
        limits.work_end = end.trim().to_string();
    }
    if let Some(days) = args.work_days {
        limits.work_days = match days.trim() {
            "none" | "" => Vec::new(),
            d => d.split(',').map(|s| s.trim().to_string()).collect(),
        };
    }
    if let Some(zone) = args.time_zone {
        limits.time_zone = zone;
    }
    if let (Some(agent), Some(r)) = (args.agent, args.rates) {
        limits.agents.retain(|a| a.agent != agent);
        if r != "shared" {
            limits.agents.push(AgentRates {
                agent,
                rates: rates(&r)?,
            });
        }
    }
    Ok(())
}

/// `WORK/OTHER` or one rate for both.
fn rates(text: &str) -> Result<Rates> {
    let (work, other) = text.split_once('/').unwrap_or((text, text));
    Ok(Rates {
        work_hours: rate(work)?,
        other_hours: rate(other)?,
    })
}

/// `4M`, `512K`, `1G`, plain bytes, or `unlimited` (none).
fn rate(text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let (number, unit) = t.split_at(t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len());
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => bail!("rate {text:?}: the unit is K, M or G (bytes per second), or write unlimited"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("rate {text:?}: write it like 4M, 512K or unlimited"))?;
    if !(n.is_finite() && n > 0.0) {
        bail!("rate {text:?}: must be more than zero (or unlimited)");
    }
    Ok(Some((n * scale as f64) as u64))
}

fn shown(r: Rates) -> String {
    let one = |r: Option<u64>| match r {
        None => "unlimited".to_string(),
        Some(b) => format!("{}/s", crate::output::size(b)),
    };
    format!(
        "{} in work hours, {} otherwise",
        one(r.work_hours),
        one(r.other_hours)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_units_and_unlimited() {
        assert_eq!(rate("4M").unwrap(), Some(4 << 20));
        assert_eq!(rate("512k").unwrap(), Some(512 << 10));
        assert_eq!(rate("1.5G").unwrap(), Some(3 << 29));
        assert_eq!(rate("unlimited").unwrap(), None);
        assert!(rate("4X").is_err());
        assert!(rate("0").is_err());
        assert!(rate("-1M").is_err());
        assert_eq!(
            rates("4M/unlimited").unwrap(),
            Rates {
                work_hours: Some(4 << 20),
                other_hours: None
            }
        );
        assert_eq!(rates("1M").unwrap().other_hours, Some(1 << 20));
    }
}
