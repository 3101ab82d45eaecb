//! A QMP client: QEMU's JSON monitor protocol over a unix socket, as a VM's
//! QEMU and `qemu-storage-daemon` speak it.
//!
//! One command at a time: each carries an `id`, and the answer with that
//! id is its reply; events and answers to nobody in between are skipped.
//! What the monitor sends is bounded (a reply larger than 16 MiB ends the
//! session) and an error reply becomes a typed error with QEMU's own words.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{Error, Result};

/// The longest line of JSON accepted from the monitor.
const MAX_REPLY: usize = 16 << 20;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    /// What the monitor is, for messages ("the VM's QEMU", ...).
    who: String,
}

impl Qmp {
    /// Connects to the monitor at `socket` and leaves capabilities
    /// negotiation mode.
    pub fn connect(socket: &Path, who: &str) -> Result<Qmp> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            Error::Disk(format!(
                "cannot reach {who}'s QMP socket {}: {e}",
                socket.display()
            ))
        })?;
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| Error::Disk(format!("QMP socket: {e}")))?;
        let writer = stream
            .try_clone()
            .map_err(|e| Error::Disk(format!("QMP socket: {e}")))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
            who: who.to_string(),
        };
        let greeting = qmp.message()?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Disk(format!(
                "{} is not a QMP monitor (no greeting)",
                socket.display()
            )));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn message(&mut self) -> Result<Value> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_REPLY as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::Disk(format!("{}: QMP: {e}", self.who)))?;
        if read == 0 {
            return Err(Error::Disk(format!("{} closed its QMP socket", self.who)));
        }
        if line.len() > MAX_REPLY {
            return Err(Error::Disk(format!(
                "{} sent a QMP message larger than 16 MiB",
                self.who
            )));
        }
        serde_json::from_slice(&line)
            .map_err(|e| Error::Disk(format!("{} sent malformed QMP: {e}", self.who)))
    }

    /// Runs `command` with `arguments`; its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if arguments.as_object().is_some_and(|a| !a.is_empty()) {
            request["arguments"] = arguments;
        }
        let mut bytes =
            serde_json::to_vec(&request).map_err(|e| Error::Disk(format!("QMP request: {e}")))?;
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .map_err(|e| Error::Disk(format!("{}: QMP: {e}", self.who)))?;
        loop {
            let reply = self.message()?;
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // an event, or an answer to nobody
            }
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            let desc = reply
                .pointer("/error/desc")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(Error::Disk(format!(
                "{} refused {command}: {desc}",
                self.who
            )));
        }
    }

    /// Runs the actions together: all of them happen at one instant, or
    /// none does.
    pub fn transaction(&mut self, actions: Vec<Value>) -> Result<()> {
        self.execute("transaction", json!({ "actions": actions }))
            .map(|_| ())
    }
}

/// One action of a transaction.
pub fn action(kind: &str, data: Value) -> Value {
    json!({ "type": kind, "data": data })
}
