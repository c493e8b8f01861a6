//! Transport: send a batch as one datagram and collect one ack per message; dumps and queries.

use std::io;
use std::time::Duration;

use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use rtnetlink::sys::SocketAddr;

use super::msg::{self, SetDef, What};
use super::ruleset::{self, HostPort};
use super::uapi::{self, FAMILY_INET, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST};
use super::wire::{self, Ack, Batch, Msg, Writer};
use super::{NftError, NftSocket};

/// Reply buffer: larger than any datagram the kernel sends us (dump skbs are at most 32 KiB;
/// acks are capped by NETLINK_CAP_ACK). A reply that still does not fit is reported, not cut.
const RECV_BUF: usize = 128 * 1024;
/// Receive queue for the acks of a large batch (one small skb per message).
const RCVBUF: usize = 1 << 20;
/// No kernel reply ever takes this long; it only turns a lost reply into an error.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// An element as dumped: key and data bytes (data empty for sets).
pub(crate) type KeyData = (Vec<u8>, Vec<u8>);

impl NftSocket {
    pub(super) fn setup(sock: rtnetlink::sys::Socket) -> Result<NftSocket, NftError> {
        // Replies are read blocking (with a timeout) or explicitly with MSG_DONTWAIT.
        sock.set_non_blocking(false).map_err(NftError::io("make netlink socket blocking"))?;
        // Optional features: without them errors are still reported, only less precisely.
        let _ = sock.set_cap_ack(true); // do not echo (possibly 60 KB) requests in error acks
        let _ = sock.set_ext_ack(true); // let the kernel point at the offending element
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
        }
        let tv = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &tv)
            .map_err(|e| NftError::Io { what: "set netlink receive timeout", source: io::Error::from(e) })?;
        let sndbuf = getsockopt(&sock, sockopt::SndBuf).unwrap_or(0);
        Ok(NftSocket {
            sock,
            // Not 1: replies to whoever used this fd before must not look like ours.
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u32 | 1),
            sbuf: Vec::with_capacity(4096),
            rbuf: vec![0; RECV_BUF],
            sndbuf,
            legacy_delete: false,
        })
    }

    /// Send a batch; any failed message fails the call (the kernel rolled the batch back).
    pub(super) fn commit(&mut self, b: Batch<What>) -> Result<(), NftError> {
        self.commit_collect(b, 0).map(drop)
    }

    /// Like [`NftSocket::commit`], but failures with errno `tolerated` are returned as message
    /// indices instead (the batch was then not applied); any other failure is an error.
    pub(super) fn commit_collect(&mut self, mut b: Batch<What>, tolerated: i32) -> Result<Vec<usize>, NftError> {
        self.seq = b.finish();
        let res = self.send(&b.w.buf).and_then(|()| self.collect_acks(&b)).and_then(|failed| {
            let mut idx = Vec::new();
            for (i, ack) in failed {
                if ack.errno != tolerated || i >= b.len() {
                    return Err(explain(&b, i, ack));
                }
                idx.push(i);
            }
            Ok(idx)
        });
        self.sbuf = b.w.buf; // keep the allocation for the next batch
        res
    }

    /// Collect the failed acks of a sent batch as (message index, ack), lowest index first.
    /// Index `b.len()` stands for the batch frame itself.
    fn collect_acks(&mut self, b: &Batch<What>) -> Result<Vec<(usize, Ack)>, NftError> {
        // nfnetlink processes the whole batch inside our sendmsg() call, so every answer is
        // already queued: read without blocking until all arrived or the queue is empty (the
        // kernel stops answering after some fatal errors, e.g. ENOMEM).
        let expected = b.len();
        let mut answered = 0;
        let mut failed: Vec<(usize, Ack)> = Vec::new();
        while answered < expected {
            let n = match self.recv(libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(NftError::Protocol(
                        "nf_tables acks were lost (ENOBUFS): the outcome of the batch is unknown".into(),
                    ))
                }
                Err(e) => return Err(NftError::Io { what: "receive nf_tables ack", source: e }),
            };
            for m in wire::messages(&self.rbuf[..n]) {
                let m = m.map_err(NftError::Protocol)?;
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let ack = parse_ack(&m)?;
                if !b.owns(ack.seq) {
                    continue; // a late answer to an earlier request
                }
                // seq first_seq is BATCH_BEGIN, then one per message, then BATCH_END
                let i = ack.seq.wrapping_sub(b.first_seq).wrapping_sub(1) as usize;
                let i = if i >= expected { expected } else { i };
                answered += 1;
                if ack.errno != 0 {
                    failed.push((i, ack));
                }
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        if failed.is_empty() && answered < expected {
            return Err(NftError::Protocol(format!(
                "nf_tables answered {answered} of {expected} messages: the outcome of the batch is unknown"
            )));
        }
        Ok(failed)
    }

    /// Send one datagram to the kernel, raising SO_SNDBUF first if it would not fit (netlink
    /// refuses a datagram larger than the send buffer with EMSGSIZE).
    pub(super) fn send(&mut self, buf: &[u8]) -> Result<(), NftError> {
        if buf.len() + 1024 > self.sndbuf {
            let want = (buf.len() + 1024).next_power_of_two();
            if setsockopt(&self.sock, sockopt::SndBufForce, &want).is_err() {
                let _ = setsockopt(&self.sock, sockopt::SndBuf, &want);
            }
            self.sndbuf = getsockopt(&self.sock, sockopt::SndBuf).unwrap_or(self.sndbuf);
        }
        let n = self
            .sock
            .send_to(buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| NftError::Io { what: "send netlink request", source: e })?;
        if n != buf.len() {
            return Err(NftError::Protocol(format!("short netlink send: {n} of {} bytes", buf.len())));
        }
        Ok(())
    }

    /// Receive one datagram into `rbuf`; a datagram larger than the buffer is an error.
    pub(super) fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            match self.sock.recv(&mut &mut self.rbuf[..], flags | libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) if n > self.rbuf.len() => {
                    return Err(io::Error::other(format!("netlink reply of {n} bytes truncated")))
                }
                other => return other,
            }
        }
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = s.wrapping_add(1);
        s
    }

    /// Send one request (a dump or a get with ACK) and feed every reply message to `on_msg`
    /// until NLMSG_DONE or the final NLMSG_ERROR. Returns whether the kernel flagged the dump
    /// as interrupted by a concurrent change. `op` names the request in errors.
    pub(super) fn query(
        &mut self,
        op: impl Fn() -> String,
        ty: u16,
        flags: u16,
        family: u8,
        body: impl FnOnce(&mut Writer),
        mut on_msg: impl FnMut(&Msg<'_>) -> Result<(), String>,
    ) -> Result<bool, NftError> {
        let seq = self.next_seq();
        let mut w = Writer { buf: std::mem::take(&mut self.sbuf) };
        w.buf.clear();
        let start = w.begin_msg(ty, NLM_F_REQUEST | flags, seq, family, 0);
        body(&mut w);
        w.end_msg(start);
        let sent = self.send(&w.buf);
        self.sbuf = w.buf;
        sent?;
        let mut interrupted = false;
        let mut bad: Option<String> = None;
        loop {
            let n = self.recv(0).map_err(NftError::io("receive netlink reply"))?;
            for m in wire::messages(&self.rbuf[..n]) {
                let m = m.map_err(NftError::Protocol)?;
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.ty {
                    NLMSG_ERROR => {
                        let ack = parse_ack(&m)?;
                        if ack.errno != 0 {
                            return Err(NftError::kernel(op(), ack.errno, ack.msg));
                        }
                        return bad.map_or(Ok(interrupted), |b| Err(NftError::Protocol(format!("{}: {b}", op()))));
                    }
                    NLMSG_DONE => {
                        // The payload of DONE is the dump's final status.
                        let status = m.payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if status < 0 {
                            return Err(NftError::kernel(op(), -status, None));
                        }
                        return bad.map_or(Ok(interrupted), |b| Err(NftError::Protocol(format!("{}: {b}", op()))));
                    }
                    _ => {
                        // Keep reading to the end even after a bad message, so that no reply
                        // of this request is left in the socket.
                        if bad.is_none() {
                            bad = on_msg(&m).err();
                        }
                    }
                }
            }
        }
    }

    /// GETTABLE for `inet <table>`: its handle if it exists, ENOENT if not.
    pub(crate) fn get_table(&mut self, table: &str) -> Result<u64, NftError> {
        let op = || format!("get table inet {table}");
        let mut handle = 0;
        self.query(
            op,
            wire::nft_type(uapi::GETTABLE),
            NLM_F_ACK,
            FAMILY_INET,
            |w| w.str(uapi::NFTA_TABLE_NAME, table),
            |m| {
                let h = m.payload.get(uapi::NFGENMSG_LEN..).and_then(|a| wire::attr(a, uapi::NFTA_TABLE_HANDLE));
                if let Some(h) = h.and_then(|h| <[u8; 8]>::try_from(h).ok()) {
                    handle = u64::from_be_bytes(h);
                }
                Ok(())
            },
        )?;
        Ok(handle)
    }

    /// The ruleset generation (NFT_MSG_GETGEN): every committed nf_tables transaction in this
    /// netns, by anyone, increments it.
    pub(crate) fn generation(&mut self) -> Result<u32, NftError> {
        let mut gen = None;
        self.query(
            || "get nf_tables generation".to_string(),
            wire::nft_type(uapi::GETGEN),
            NLM_F_ACK,
            0,
            |_| {},
            |m| {
                if m.ty == wire::nft_type(uapi::NEWGEN) {
                    let g = m.payload.get(uapi::NFGENMSG_LEN..).and_then(|a| wire::attr(a, uapi::NFTA_GEN_ID));
                    gen = g.and_then(|g| <[u8; 4]>::try_from(g).ok()).map(u32::from_be_bytes);
                }
                Ok(())
            },
        )?;
        gen.ok_or_else(|| NftError::Protocol("no generation in the GETGEN answer".into()))
    }

    /// Dump the (key, data) of every element of `set` in `table`.
    pub(crate) fn dump_elems(&mut self, table: &str, set: &SetDef) -> Result<Vec<KeyData>, NftError> {
        let op = || format!("list {} {}", set.kind(), set.name);
        for _ in 0..5 {
            let mut got = Vec::new();
            let interrupted = self.query(
                op,
                wire::nft_type(uapi::GETSETELEM),
                NLM_F_DUMP,
                FAMILY_INET,
                |w| {
                    w.str(uapi::NFTA_SET_ELEM_LIST_TABLE, table);
                    w.str(uapi::NFTA_SET_ELEM_LIST_SET, set.name);
                },
                |m| {
                    msg::decode_elems(m.payload, |_, k, d| {
                        got.push((k.to_vec(), d.unwrap_or_default().to_vec()));
                        Ok(())
                    })
                },
            )?;
            if !interrupted {
                return Ok(got);
            }
        }
        Err(NftError::Protocol(format!("{}: kept changing during the dump", op())))
    }

    /// Dump the elements of a host-port map into `out`.
    pub(super) fn dump_map(&mut self, set: &SetDef, out: &mut Vec<HostPort>) -> Result<(), NftError> {
        for (key, data) in self.dump_elems(ruleset::TABLE, set)? {
            let port = HostPort::decode(set, &key, &data)
                .ok_or_else(|| NftError::Protocol(format!("undecodable element in map {}", set.name)))?;
            out.push(port);
        }
        Ok(())
    }
}

fn parse_ack(m: &Msg<'_>) -> Result<Ack, NftError> {
    wire::parse_ack(m).map_err(NftError::Protocol)
}

/// Turn a failed ack of message `i` into an error naming what the message did.
fn explain(b: &Batch<What>, i: usize, ack: Ack) -> NftError {
    let Some(sent) = b.sent.get(i) else {
        return NftError::kernel("nf_tables batch".into(), ack.errno, ack.msg);
    };
    // The extended ack offset counts from the start of the failed message.
    let elem = ack.offset.and_then(|off| b.w.buf.get(sent.range.start + off as usize..sent.range.end));
    NftError::kernel(sent.what.describe(elem), ack.errno, ack.msg)
}
