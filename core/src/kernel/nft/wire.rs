//! Netlink framing for nfnetlink: attribute writer, message and batch builder, reply parser.
//!
//! Raw bytes on purpose: every nf_tables expression podnet needs (nat, fib, ct, masq, ...) is a
//! handful of u32 attributes, and owning the encoder lets the unit tests pin the exact bytes.

use super::uapi::{
    NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, NLA_F_NESTED, NLA_TYPE_MASK, NLMSGERR_ATTR_MSG,
    NLMSGERR_ATTR_OFFS, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_REQUEST,
};
use std::ops::Range;

/// Round up to the 4-byte netlink alignment.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends netlink attributes (TLVs) to a buffer; nests are patched when they close.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    /// One attribute with a raw payload, padded to 4 bytes.
    pub(crate) fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// A u32 attribute: nf_tables and ctnetlink carry integers big-endian.
    pub(crate) fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A NUL-terminated string attribute, as nft sends names.
    pub(crate) fn str(&mut self, ty: u16, s: &str) {
        let len = 4 + s.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// A nested attribute (NLA_F_NESTED set) whose content `f` writes.
    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Writer)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(self);
        let len = self.buf.len() - start;
        // Attribute lengths are u16: callers chunk large element lists well below this.
        debug_assert!(len <= usize::from(u16::MAX), "netlink attribute overflows u16");
        self.buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len());
        self.buf.resize(n, 0);
    }

    /// Start a netlink message; returns its start offset for [`Writer::end_msg`].
    pub(crate) fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end_msg
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: 0 = "fill in for me"
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Patch the length of the message that started at `start`.
    pub(crate) fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

/// Message type of an nf_tables message: subsystem in the high byte.
pub(crate) const fn nft_type(msg: u8) -> u16 {
    ((NFNL_SUBSYS_NFTABLES as u16) << 8) | msg as u16
}

/// One message of a batch, remembered so that an error reply can be explained.
#[derive(Debug, Clone)]
pub(crate) struct Sent<W> {
    /// Byte range of the message inside the batch buffer.
    pub(crate) range: Range<usize>,
    pub(crate) what: W,
}

/// An nf_tables transaction: BATCH_BEGIN, messages, BATCH_END, sent as one datagram.
///
/// Every message carries NLM_F_ACK and its own sequence number, so the reply names the message
/// (and, with extended acks, the attribute) that failed.
#[derive(Debug)]
pub(crate) struct Batch<W> {
    pub(crate) w: Writer,
    pub(crate) first_seq: u32,
    next_seq: u32,
    pub(crate) sent: Vec<Sent<W>>,
}

impl<W> Batch<W> {
    /// Start a batch in `buf` (cleared; passed in so its capacity is reused).
    pub(crate) fn new(mut buf: Vec<u8>, first_seq: u32) -> Batch<W> {
        buf.clear();
        let mut w = Writer { buf };
        // The batch frame has no ACK: the kernel answers only the messages inside it.
        let start = w.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first_seq, 0, NFNL_SUBSYS_NFTABLES.into());
        w.end_msg(start);
        Batch { w, first_seq, next_seq: first_seq.wrapping_add(1), sent: Vec::new() }
    }

    /// Append one nf_tables message (`NFT_MSG_*`) for `family`, attributes written by `body`.
    pub(crate) fn msg(&mut self, msg: u8, flags: u16, family: u8, what: W, body: impl FnOnce(&mut Writer)) {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let start = self.w.begin_msg(nft_type(msg), NLM_F_REQUEST | NLM_F_ACK | flags, seq, family, 0);
        body(&mut self.w);
        self.w.end_msg(start);
        self.sent.push(Sent { range: start..self.w.buf.len(), what });
    }

    /// Number of nf_tables messages (acks to expect).
    pub(crate) fn len(&self) -> usize {
        self.sent.len()
    }

    /// Close the batch; returns the datagram and the sequence number to use next.
    pub(crate) fn finish(&mut self) -> u32 {
        let seq = self.next_seq;
        let start = self.w.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES.into());
        self.w.end_msg(start);
        seq.wrapping_add(1)
    }

    /// Whether `seq` belongs to this batch (begin .. end inclusive), robust to wrap-around.
    pub(crate) fn owns(&self, seq: u32) -> bool {
        seq.wrapping_sub(self.first_seq) <= self.sent.len() as u32 + 1
    }
}

/// A netlink message header plus its payload (after the 16-byte header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

/// Iterate over the netlink messages of one datagram. Stops at the first malformed header.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, String>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() < NLMSG_HDRLEN {
            buf = &[];
            return Some(Err("short netlink header".into()));
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap_or_default()) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err(format!("bad netlink message length {len}")));
        }
        let m = Msg {
            ty: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap_or_default()),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        buf = &buf[align4(len).min(buf.len())..];
        Some(Ok(m))
    })
}

/// Iterate over attributes: (type without flag bits, payload). Stops at a malformed one.
pub(crate) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            buf = &[];
            return None;
        }
        let data = &buf[4..len];
        buf = &buf[align4(len).min(buf.len())..];
        Some((ty, data))
    })
}

/// First attribute of type `ty`.
pub(crate) fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, d)| d)
}

/// A decoded NLMSG_ERROR (errno 0 = ack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// Positive errno, 0 for success.
    pub(crate) errno: i32,
    /// Sequence number of the request it answers.
    pub(crate) seq: u32,
    /// Extended ack: kernel message.
    pub(crate) msg: Option<String>,
    /// Extended ack: offset of the offending attribute from the start of the request.
    pub(crate) offset: Option<u32>,
}

/// Parse the payload of an NLMSG_ERROR message.
pub(crate) fn parse_ack(m: &Msg<'_>) -> Result<Ack, String> {
    let p = m.payload;
    if p.len() < 4 + NLMSG_HDRLEN {
        return Err("short NLMSG_ERROR".into());
    }
    let code = i32::from_ne_bytes(p[0..4].try_into().unwrap_or_default());
    let orig = &p[4..];
    let orig_len = u32::from_ne_bytes(orig[0..4].try_into().unwrap_or_default()) as usize;
    let seq = u32::from_ne_bytes(orig[8..12].try_into().unwrap_or_default());
    let mut ack = Ack { errno: code.saturating_neg(), seq, msg: None, offset: None };
    if m.flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if m.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { align4(orig_len) };
        if let Some(tlvs) = orig.get(echoed..) {
            for (ty, data) in attrs(tlvs) {
                match ty {
                    NLMSGERR_ATTR_MSG => {
                        let s = data.split(|b| *b == 0).next().unwrap_or_default();
                        ack.msg = Some(String::from_utf8_lossy(s).into_owned());
                    }
                    NLMSGERR_ATTR_OFFS if data.len() >= 4 => {
                        ack.offset = Some(u32::from_ne_bytes(data[0..4].try_into().unwrap_or_default()));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::nft::uapi::{NLMSG_ERROR, NLM_F_CREATE};

    #[test]
    fn attribute_padding_and_nesting() {
        let mut w = Writer::default();
        w.nest(3, |w| {
            w.str(1, "ab");
            w.u32(2, 0x0102_0304);
        });
        assert_eq!(
            w.buf,
            [
                20, 0, 3, 0x80, // nest len 20, type 3 | NLA_F_NESTED
                7, 0, 1, 0, b'a', b'b', 0, 0, // "ab\0" + 1 pad
                8, 0, 2, 0, 1, 2, 3, 4, // big-endian u32
            ]
        );
        let inner: Vec<_> = attrs(attr(&w.buf, 3).unwrap()).collect();
        assert_eq!(inner, vec![(1, &b"ab\0"[..]), (2, &[1, 2, 3, 4][..])]);
    }

    #[test]
    fn batch_framing() {
        let mut b: Batch<()> = Batch::new(Vec::new(), 100);
        b.msg(0, NLM_F_CREATE, 1, (), |w| w.str(1, "podnet"));
        let next = b.finish();
        assert_eq!(next, 103);
        #[rustfmt::skip]
        let want: Vec<u8> = [
            // BATCH_BEGIN: len 20, type 16, flags REQUEST, seq 100, pid 0, AF_UNSPEC, v0, res_id htons(10)
            &[20u8, 0, 0, 0, 16, 0, 1, 0][..], &100u32.to_ne_bytes(), &[0, 0, 0, 0], &[0, 0, 0, 10],
            // NEWTABLE: len 32, type 0x0a00, flags REQUEST|ACK|CREATE, seq 101, NFPROTO_INET
            &[32, 0, 0, 0, 0x00, 0x0a, 0x05, 0x04], &101u32.to_ne_bytes(), &[0, 0, 0, 0], &[1, 0, 0, 0],
            &[11, 0, 1, 0], b"podnet\0", &[0],
            // BATCH_END: type 17, seq 102
            &[20, 0, 0, 0, 17, 0, 1, 0], &102u32.to_ne_bytes(), &[0, 0, 0, 0], &[0, 0, 0, 10],
        ]
        .concat();
        assert_eq!(b.w.buf, want);
        assert!(b.owns(100) && b.owns(101) && b.owns(102) && !b.owns(103) && !b.owns(99));
        let msgs: Vec<_> = messages(&b.w.buf).map(Result::unwrap).map(|m| (m.ty, m.seq)).collect();
        assert_eq!(msgs, vec![(16, 100), (0x0a00, 101), (17, 102)]);
    }

    #[test]
    fn parses_capped_ack_with_extack_offset() {
        let mut w = Writer::default();
        let s = w.begin_msg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, 0, 0);
        // begin_msg wrote a 4-byte nfgenmsg; an NLMSG_ERROR payload starts with the errno instead
        w.buf.truncate(s + NLMSG_HDRLEN);
        w.buf.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let o = w.begin_msg(nft_type(12), NLM_F_REQUEST, 42, 1, 0);
        w.buf.truncate(o + NLMSG_HDRLEN);
        w.buf[o..o + 4].copy_from_slice(&200u32.to_ne_bytes()); // original length, payload capped
        w.u32(NLMSGERR_ATTR_OFFS, 0);
        let n = w.buf.len();
        w.buf[n - 4..].copy_from_slice(&64u32.to_ne_bytes()); // offsets are host order
        w.str(NLMSGERR_ATTR_MSG, "boom");
        w.end_msg(s);
        let m = messages(&w.buf).next().unwrap().unwrap();
        let ack = parse_ack(&m).unwrap();
        assert_eq!(ack, Ack { errno: libc::EEXIST, seq: 42, msg: Some("boom".into()), offset: Some(64) });
    }
}
