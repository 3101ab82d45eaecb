//! An NBD client over a unix or TCP socket: fixed newstyle negotiation with
//! structured replies and meta contexts, then block status, pipelined reads,
//! writes and flushes on one connection.
//!
//! Structured replies are required (QEMU has had them since 2.11): without
//! them a read's reply cannot be told from the next reply when the server
//! fails halfway, and block status does not exist. Reads are pipelined
//! ([`Client::read_many`]): requests carry no payload, so sending a window
//! of them before reading any reply cannot deadlock, and the server works
//! on the next while the previous one crosses the socket.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::proto::*;
use crate::{Error, Result};

/// Where an NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Address {
    /// `unix:PATH` or `HOST:PORT` (an IP address and a port).
    pub fn parse(text: &str) -> Result<Address> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(Error::Invalid(
                    "unix: needs a socket path, for example unix:/run/coffer/disk.sock".into(),
                ));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>().map(Address::Tcp).map_err(|_| {
            Error::Invalid(format!(
                "{text:?} is not an NBD address: give unix:PATH or IP:PORT (for example 127.0.0.1:10809)"
            ))
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// One socket, whichever kind.
enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    fn connect(address: &Address) -> std::io::Result<Socket> {
        let socket = match address {
            Address::Unix(path) => Socket::Unix(UnixStream::connect(path)?),
            Address::Tcp(addr) => {
                let s = TcpStream::connect_timeout(addr, Duration::from_secs(30))?;
                s.set_nodelay(true)?;
                Socket::Tcp(s)
            }
        };
        // A server that stops answering fails the job instead of hanging it.
        let limit = Some(Duration::from_secs(300));
        match &socket {
            Socket::Unix(s) => {
                s.set_read_timeout(limit)?;
                s.set_write_timeout(limit)?;
            }
            Socket::Tcp(s) => {
                s.set_read_timeout(limit)?;
                s.set_write_timeout(limit)?;
            }
        }
        Ok(socket)
    }

    fn try_clone(&self) -> std::io::Result<Socket> {
        Ok(match self {
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
        })
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Unix(s) => s.write(buf),
            Socket::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Unix(s) => s.flush(),
            Socket::Tcp(s) => s.flush(),
        }
    }
}

/// A run of the export with one status: for `base:allocation`,
/// [`STATE_HOLE`] and [`STATE_ZERO`]; for a dirty bitmap, [`STATE_DIRTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub flags: u32,
}

/// One read of a pipelined batch; `data` is filled in.
#[derive(Debug)]
pub struct ReadRequest {
    pub offset: u64,
    pub data: Vec<u8>,
}

/// The largest request Coffer sends unless the server asks for less.
const DEFAULT_MAX_REQUEST: u32 = 32 << 20;
/// Block status is asked for in windows of this size: large enough that a
/// disk of a terabyte takes a few hundred round trips, and well below the
/// 32-bit length field.
const STATUS_WINDOW: u64 = 1 << 30;
/// The most extents one block status chunk may carry before Coffer calls it
/// hostile (a 1 GiB window of 512-byte extents is 2 Mi).
const MAX_STATUS_PAYLOAD: u32 = 4 + 8 * (4 << 20);

/// A connection in the transmission phase.
pub struct Client {
    reader: BufReader<Socket>,
    writer: BufWriter<Socket>,
    size: u64,
    flags: u16,
    max_request: u32,
    contexts: Vec<(u32, String)>,
    next_handle: u64,
}

impl Client {
    /// Connects to `address`, negotiates structured replies and the meta
    /// contexts asked for (those the server does not know are left out:
    /// see [`Client::has_context`]), and opens `export`.
    pub fn connect(address: &Address, export: &str, contexts: &[String]) -> Result<Client> {
        let socket = Socket::connect(address).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot connect to {address}: {e}"),
            ))
        })?;
        let reader = BufReader::with_capacity(256 << 10, socket.try_clone().map_err(Error::Io)?);
        let writer = BufWriter::with_capacity(64 << 10, socket);
        let mut client = Client {
            reader,
            writer,
            size: 0,
            flags: 0,
            max_request: DEFAULT_MAX_REQUEST,
            contexts: Vec::new(),
            next_handle: 1,
        };
        client.handshake()?;
        client.option_expect_ack(OPT_STRUCTURED_REPLY, &[], "structured replies")?;
        if !contexts.is_empty() {
            client.set_meta_contexts(export, contexts)?;
        }
        client.go(export)?;
        Ok(client)
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn read_only(&self) -> bool {
        self.flags & TFLAG_READ_ONLY != 0
    }

    /// The largest read or write the server takes in one request.
    pub fn max_request(&self) -> u32 {
        self.max_request
    }

    /// Whether the server granted the meta context `name`.
    pub fn has_context(&self, name: &str) -> bool {
        self.contexts.iter().any(|(_, n)| n == name)
    }

    fn handshake(&mut self) -> Result<()> {
        let mut magic = [0u8; 8];
        read_exact(&mut self.reader, &mut magic)?;
        if &magic != NBD_MAGIC {
            return Err(Error::Protocol("not an NBD server".into()));
        }
        if read_u64(&mut self.reader)? != IHAVEOPT {
            return Err(Error::Protocol(
                "the server speaks only the old NBD negotiation; Coffer needs newstyle".into(),
            ));
        }
        let flags = read_u16(&mut self.reader)?;
        if flags & FLAG_FIXED_NEWSTYLE == 0 {
            return Err(Error::Protocol(
                "the server does not offer fixed newstyle negotiation".into(),
            ));
        }
        let mut mine = CLIENT_FIXED_NEWSTYLE;
        if flags & FLAG_NO_ZEROES != 0 {
            mine |= CLIENT_NO_ZEROES;
        }
        write_all(&mut self.writer, &mine.to_be_bytes())
    }

    fn send_option(&mut self, option: u32, data: &[u8]) -> Result<()> {
        let mut head = Vec::with_capacity(16 + data.len());
        head.extend_from_slice(&IHAVEOPT.to_be_bytes());
        head.extend_from_slice(&option.to_be_bytes());
        head.extend_from_slice(&(data.len() as u32).to_be_bytes());
        head.extend_from_slice(data);
        write_all(&mut self.writer, &head)?;
        self.writer.flush().map_err(Error::from_io)
    }

    /// Reads one option reply: its type and data.
    fn option_reply(&mut self, option: u32) -> Result<(u32, Vec<u8>)> {
        if read_u64(&mut self.reader)? != OPTION_REPLY_MAGIC {
            return Err(Error::Protocol("bad option reply magic".into()));
        }
        let answered = read_u32(&mut self.reader)?;
        if answered != option {
            return Err(Error::Protocol(format!(
                "a reply to option {answered} came for option {option}"
            )));
        }
        let kind = read_u32(&mut self.reader)?;
        let len = read_u32(&mut self.reader)?;
        let data = read_bounded(&mut self.reader, len, MAX_OPTION_BYTES, "an option reply")?;
        Ok((kind, data))
    }

    fn refused(what: &str, kind: u32, data: &[u8]) -> Error {
        let reason = match kind {
            REP_ERR_UNSUP => "not supported",
            REP_ERR_POLICY => "refused by policy",
            REP_ERR_INVALID => "invalid",
            REP_ERR_UNKNOWN => "no such export",
            _ => "error",
        };
        let text = String::from_utf8_lossy(data);
        Error::Refused {
            what: what.to_string(),
            message: if text.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}: {text}")
            },
        }
    }

    fn option_expect_ack(&mut self, option: u32, data: &[u8], what: &str) -> Result<()> {
        self.send_option(option, data)?;
        let (kind, reply) = self.option_reply(option)?;
        if kind != REP_ACK {
            return Err(Self::refused(what, kind, &reply));
        }
        Ok(())
    }

    fn set_meta_contexts(&mut self, export: &str, contexts: &[String]) -> Result<()> {
        let mut data = Vec::new();
        data.extend_from_slice(&(export.len() as u32).to_be_bytes());
        data.extend_from_slice(export.as_bytes());
        data.extend_from_slice(&(contexts.len() as u32).to_be_bytes());
        for c in contexts {
            data.extend_from_slice(&(c.len() as u32).to_be_bytes());
            data.extend_from_slice(c.as_bytes());
        }
        self.send_option(OPT_SET_META_CONTEXT, &data)?;
        loop {
            let (kind, reply) = self.option_reply(OPT_SET_META_CONTEXT)?;
            match kind {
                REP_ACK => return Ok(()),
                REP_META_CONTEXT => {
                    let mut p = Payload::new(&reply, "a meta context reply");
                    let id = p.u32()?;
                    let rest = reply.len() - 4;
                    let name = p.text(rest)?;
                    if !contexts.contains(&name) {
                        return Err(Error::Protocol(format!(
                            "the server granted meta context {name:?}, which was not asked for"
                        )));
                    }
                    self.contexts.push((id, name));
                }
                _ => return Err(Self::refused("the meta contexts", kind, &reply)),
            }
        }
    }

    fn go(&mut self, export: &str) -> Result<()> {
        let mut data = Vec::new();
        data.extend_from_slice(&(export.len() as u32).to_be_bytes());
        data.extend_from_slice(export.as_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
        self.send_option(OPT_GO, &data)?;
        let mut seen_export = false;
        loop {
            let (kind, reply) = self.option_reply(OPT_GO)?;
            match kind {
                REP_ACK if seen_export => return Ok(()),
                REP_ACK => {
                    return Err(Error::Protocol(
                        "the server opened the export without saying its size".into(),
                    ))
                }
                REP_INFO => {
                    let mut p = Payload::new(&reply, "an export information reply");
                    match p.u16()? {
                        INFO_EXPORT => {
                            self.size = p.u64()?;
                            self.flags = p.u16()?;
                            seen_export = true;
                        }
                        INFO_BLOCK_SIZE => {
                            let _minimum = p.u32()?;
                            let _preferred = p.u32()?;
                            let maximum = p.u32()?;
                            if maximum >= 4096 {
                                self.max_request = maximum.min(DEFAULT_MAX_REQUEST);
                            }
                        }
                        _ => {} // information Coffer did not ask for is ignored
                    }
                }
                _ => return Err(Self::refused(&format!("export {export:?}"), kind, &reply)),
            }
        }
    }

    fn send_request(&mut self, command: u16, flags: u16, offset: u64, len: u32) -> Result<u64> {
        let handle = self.next_handle;
        self.next_handle += 1;
        let mut head = [0u8; 28];
        head[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        head[4..6].copy_from_slice(&flags.to_be_bytes());
        head[6..8].copy_from_slice(&command.to_be_bytes());
        head[8..16].copy_from_slice(&handle.to_be_bytes());
        head[16..24].copy_from_slice(&offset.to_be_bytes());
        head[24..28].copy_from_slice(&len.to_be_bytes());
        write_all(&mut self.writer, &head)?;
        Ok(handle)
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(Error::Invalid(format!(
                "{len} bytes at offset {offset} lie beyond the end of the export ({} bytes)",
                self.size
            )));
        }
        Ok(())
    }

    /// Reads every request of `batch` (each at most [`Client::max_request`]
    /// bytes), all of them in flight at once.
    pub fn read_many(&mut self, batch: &mut [ReadRequest]) -> Result<()> {
        let first = self.next_handle;
        for r in batch.iter() {
            self.check_range(r.offset, r.data.len() as u64)?;
            if r.data.len() > self.max_request as usize {
                return Err(Error::Invalid(format!(
                    "a read of {} bytes is larger than the server's {}",
                    r.data.len(),
                    self.max_request
                )));
            }
            self.send_request(CMD_READ, 0, r.offset, r.data.len() as u32)?;
        }
        self.writer.flush().map_err(Error::from_io)?;
        let mut pending: Vec<ReadState> = batch.iter().map(|_| ReadState::default()).collect();
        let mut open = batch.len();
        let mut failure = None;
        while open > 0 {
            let header = self.reply_header()?;
            let slot = header
                .handle
                .checked_sub(first)
                .map(|i| i as usize)
                .filter(|i| *i < batch.len() && !pending[*i].done)
                .ok_or_else(|| Error::Protocol("a reply came for no read in flight".into()))?;
            let request = &mut batch[slot];
            let state = &mut pending[slot];
            match header.body {
                ReplyBody::Simple { errno } => {
                    if errno == 0 {
                        return Err(Error::Protocol(
                            "a read got a simple reply after structured replies were agreed".into(),
                        ));
                    }
                    state
                        .error
                        .get_or_insert(command_error("read", request.offset, errno, ""));
                    state.done = true;
                }
                ReplyBody::Chunk { flags, kind, len } => {
                    self.read_chunk(request, state, kind, len)?;
                    state.done = flags & REPLY_FLAG_DONE != 0;
                }
            }
            if state.done {
                open -= 1;
                if let Some(e) = state.error.take() {
                    failure.get_or_insert(e);
                } else {
                    state.check_covered(request)?;
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Reads `buf.len()` bytes at `offset`, in requests the server accepts.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let step = self.max_request as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = step.min(buf.len() - done);
            let mut one = [ReadRequest {
                offset: offset + done as u64,
                data: vec![0u8; n],
            }];
            self.read_many(&mut one)?;
            buf[done..done + n].copy_from_slice(&one[0].data);
            done += n;
        }
        Ok(())
    }

    fn read_chunk(
        &mut self,
        request: &mut ReadRequest,
        state: &mut ReadState,
        kind: u16,
        len: u32,
    ) -> Result<()> {
        let start = request.offset;
        let end = start + request.data.len() as u64;
        match kind {
            REPLY_TYPE_OFFSET_DATA => {
                if len < 8 {
                    return Err(Error::Protocol("a data chunk without its offset".into()));
                }
                let offset = read_u64(&mut self.reader)?;
                let n = u64::from(len - 8);
                if offset < start || offset.saturating_add(n) > end {
                    return Err(Error::Protocol(
                        "a data chunk lies outside the read it answers".into(),
                    ));
                }
                let at = (offset - start) as usize;
                read_exact(&mut self.reader, &mut request.data[at..at + n as usize])?;
                state.covered.push((offset, offset + n));
            }
            REPLY_TYPE_OFFSET_HOLE => {
                let body = read_bounded(&mut self.reader, len, 12, "a hole chunk")?;
                let mut p = Payload::new(&body, "a hole chunk");
                let offset = p.u64()?;
                let n = u64::from(p.u32()?);
                if n == 0 || offset < start || offset.saturating_add(n) > end {
                    return Err(Error::Protocol(
                        "a hole chunk lies outside the read it answers".into(),
                    ));
                }
                let at = (offset - start) as usize;
                request.data[at..at + n as usize].fill(0);
                state.covered.push((offset, offset + n));
            }
            REPLY_TYPE_NONE if len == 0 => {}
            REPLY_TYPE_ERROR | REPLY_TYPE_ERROR_OFFSET => {
                let e = self.error_chunk("read", start, kind, len)?;
                state.error.get_or_insert(e);
            }
            _ => {
                return Err(Error::Protocol(format!(
                    "a reply chunk of type {kind} to a read"
                )))
            }
        }
        Ok(())
    }

    fn error_chunk(
        &mut self,
        command: &'static str,
        offset: u64,
        kind: u16,
        len: u32,
    ) -> Result<Error> {
        let body = read_bounded(&mut self.reader, len, MAX_OPTION_BYTES, "an error chunk")?;
        let mut p = Payload::new(&body, "an error chunk");
        let errno = p.u32()?;
        let n = p.u16()? as usize;
        let message = String::from_utf8_lossy(p.bytes(n)?).into_owned();
        let at = if kind == REPLY_TYPE_ERROR_OFFSET {
            p.u64()?
        } else {
            offset
        };
        Ok(command_error(command, at, errno, &message))
    }

    fn reply_header(&mut self) -> Result<ReplyHeader> {
        match read_u32(&mut self.reader)? {
            SIMPLE_REPLY_MAGIC => {
                let errno = read_u32(&mut self.reader)?;
                let handle = read_u64(&mut self.reader)?;
                Ok(ReplyHeader {
                    handle,
                    body: ReplyBody::Simple { errno },
                })
            }
            STRUCTURED_REPLY_MAGIC => {
                let flags = read_u16(&mut self.reader)?;
                let kind = read_u16(&mut self.reader)?;
                let handle = read_u64(&mut self.reader)?;
                let len = read_u32(&mut self.reader)?;
                Ok(ReplyHeader {
                    handle,
                    body: ReplyBody::Chunk { flags, kind, len },
                })
            }
            other => Err(Error::Protocol(format!("bad reply magic {other:#x}"))),
        }
    }

    /// Waits for the reply to a command without data in its answer
    /// (write, flush, write zeroes).
    fn plain_reply(&mut self, handle: u64, command: &'static str, offset: u64) -> Result<()> {
        self.writer.flush().map_err(Error::from_io)?;
        let mut error = None;
        loop {
            let header = self.reply_header()?;
            if header.handle != handle {
                return Err(Error::Protocol(format!(
                    "a reply came for no {command} in flight"
                )));
            }
            match header.body {
                ReplyBody::Simple { errno: 0 } => return Ok(()),
                ReplyBody::Simple { errno } => {
                    return Err(command_error(command, offset, errno, ""))
                }
                ReplyBody::Chunk { flags, kind, len } => {
                    match kind {
                        REPLY_TYPE_NONE if len == 0 => {}
                        REPLY_TYPE_ERROR | REPLY_TYPE_ERROR_OFFSET => {
                            let e = self.error_chunk(command, offset, kind, len)?;
                            error.get_or_insert(e);
                        }
                        _ => {
                            return Err(Error::Protocol(format!(
                                "a reply chunk of type {kind} to a {command}"
                            )))
                        }
                    }
                    if flags & REPLY_FLAG_DONE != 0 {
                        return error.map_or(Ok(()), Err);
                    }
                }
            }
        }
    }

    /// Writes `data` at `offset`, in requests the server accepts.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        if self.read_only() {
            return Err(Error::Invalid("the export is read-only".into()));
        }
        self.check_range(offset, data.len() as u64)?;
        for (i, piece) in data.chunks(self.max_request as usize).enumerate() {
            let at = offset + (i * self.max_request as usize) as u64;
            let handle = self.send_request(CMD_WRITE, 0, at, piece.len() as u32)?;
            write_all(&mut self.writer, piece)?;
            self.plain_reply(handle, "write", at)?;
        }
        Ok(())
    }

    /// Asks the server to make every completed write durable.
    pub fn flush(&mut self) -> Result<()> {
        if self.flags & TFLAG_SEND_FLUSH == 0 {
            return Ok(());
        }
        let handle = self.send_request(CMD_FLUSH, 0, 0, 0)?;
        self.plain_reply(handle, "flush", 0)
    }

    /// The extents of meta context `context` over `offset..offset + len`,
    /// contiguous and clipped to that range.
    pub fn extents(&mut self, context: &str, offset: u64, len: u64) -> Result<Vec<Extent>> {
        self.check_range(offset, len)?;
        let id = self
            .contexts
            .iter()
            .find(|(_, n)| n == context)
            .map(|(id, _)| *id)
            .ok_or_else(|| Error::Invalid(format!("meta context {context:?} was not granted")))?;
        let end = offset + len;
        let mut out: Vec<Extent> = Vec::new();
        let mut at = offset;
        while at < end {
            let window = (end - at).min(STATUS_WINDOW) as u32;
            let got = self.block_status(id, at, window)?;
            let mut advanced = 0u64;
            for (n, flags) in got {
                let n = u64::from(n).min(end - at - advanced);
                if n == 0 {
                    break;
                }
                match out.last_mut() {
                    Some(last)
                        if last.flags == flags && last.offset + last.len == at + advanced =>
                    {
                        last.len += n
                    }
                    _ => out.push(Extent {
                        offset: at + advanced,
                        len: n,
                        flags,
                    }),
                }
                advanced += n;
            }
            if advanced == 0 {
                return Err(Error::Protocol(
                    "block status described nothing of the range asked".into(),
                ));
            }
            at += advanced;
        }
        Ok(out)
    }

    /// One block status request; the descriptors of context `id`.
    fn block_status(&mut self, id: u32, offset: u64, len: u32) -> Result<Vec<(u32, u32)>> {
        let handle = self.send_request(CMD_BLOCK_STATUS, 0, offset, len)?;
        self.writer.flush().map_err(Error::from_io)?;
        let mut found = None;
        let mut error = None;
        loop {
            let header = self.reply_header()?;
            if header.handle != handle {
                return Err(Error::Protocol(
                    "a reply came for no block status in flight".into(),
                ));
            }
            let (flags, kind, n) = match header.body {
                ReplyBody::Simple { errno } => {
                    return Err(command_error("block status", offset, errno.max(EIO), ""))
                }
                ReplyBody::Chunk { flags, kind, len } => (flags, kind, len),
            };
            match kind {
                REPLY_TYPE_BLOCK_STATUS => {
                    let body =
                        read_bounded(&mut self.reader, n, MAX_STATUS_PAYLOAD, "a block status")?;
                    if body.len() < 12 || (body.len() - 4) % 8 != 0 {
                        return Err(Error::Protocol("a malformed block status".into()));
                    }
                    let mut p = Payload::new(&body, "a block status");
                    let context = p.u32()?;
                    let mut descriptors = Vec::with_capacity((body.len() - 4) / 8);
                    while !p.is_empty() {
                        descriptors.push((p.u32()?, p.u32()?));
                    }
                    if context == id {
                        found = Some(descriptors);
                    }
                }
                REPLY_TYPE_NONE if n == 0 => {}
                REPLY_TYPE_ERROR | REPLY_TYPE_ERROR_OFFSET => {
                    let e = self.error_chunk("block status", offset, kind, n)?;
                    error.get_or_insert(e);
                }
                _ => {
                    return Err(Error::Protocol(format!(
                        "a reply chunk of type {kind} to a block status"
                    )))
                }
            }
            if flags & REPLY_FLAG_DONE != 0 {
                break;
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        found.ok_or_else(|| {
            Error::Protocol("the block status reply left out a context it granted".into())
        })
    }

    /// Ends the session cleanly.
    pub fn disconnect(mut self) -> Result<()> {
        self.send_request(CMD_DISC, 0, 0, 0)?;
        self.writer.flush().map_err(Error::from_io)
    }
}

fn command_error(command: &'static str, offset: u64, errno: u32, message: &str) -> Error {
    Error::Command {
        command,
        offset,
        errno,
        message: if message.is_empty() {
            errno_text(errno).to_string()
        } else {
            message.to_string()
        },
    }
}

struct ReplyHeader {
    handle: u64,
    body: ReplyBody,
}

enum ReplyBody {
    Simple { errno: u32 },
    Chunk { flags: u16, kind: u16, len: u32 },
}

/// What has arrived for one read in flight.
#[derive(Default)]
struct ReadState {
    covered: Vec<(u64, u64)>,
    error: Option<Error>,
    done: bool,
}

impl ReadState {
    /// A successful read must have been answered for every byte, once.
    fn check_covered(&mut self, request: &ReadRequest) -> Result<()> {
        self.covered.sort_unstable();
        let mut at = request.offset;
        for &(start, end) in &self.covered {
            if start != at {
                return Err(Error::Protocol(
                    "a read's reply left a gap or overlapped itself".into(),
                ));
            }
            at = end;
        }
        if at != request.offset + request.data.len() as u64 {
            return Err(Error::Protocol("a read's reply ended early".into()));
        }
        Ok(())
    }
}
