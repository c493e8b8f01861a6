//! The kernel's numbers podnet's netlink code speaks, each once, as the headers define them:
//! linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h and
//! linux/netfilter.h. The encoders (`wire.rs`, `msg.rs`, `expr.rs`) and the transport read them
//! from here.

// netlink (linux/netlink.h)
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
/// NLM_F_DUMP_INTR: the dumped object changed during the dump; the result may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
/// Set on an NLMSG_ERROR whose echoed request was trimmed to its header (NETLINK_CAP_ACK).
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
/// Set on an NLMSG_ERROR that carries extended-ack TLVs after the echoed request.
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;
pub(crate) const NLMSGERR_ATTR_OFFS: u16 = 2;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;

// nfnetlink (linux/netfilter/nfnetlink.h)
pub(crate) const NFNL_SUBSYS_CTNETLINK: u8 = 1;
pub(crate) const NFNL_SUBSYS_NFTABLES: u8 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 17;
/// Size of `struct nfgenmsg` (family, version, big-endian res_id).
pub(crate) const NFGENMSG_LEN: usize = 4;

// nf_tables (linux/netfilter/nf_tables.h, linux/netfilter.h)
/// NFPROTO_INET: the family of podnet's tables.
pub(crate) const FAMILY_INET: u8 = 1;

// NFT_MSG_* message numbers.
pub(crate) const NEWTABLE: u8 = 0;
pub(crate) const GETTABLE: u8 = 1;
pub(crate) const DELTABLE: u8 = 2;
pub(crate) const NEWCHAIN: u8 = 3;
pub(crate) const NEWRULE: u8 = 6;
pub(crate) const NEWSET: u8 = 9;
pub(crate) const NEWSETELEM: u8 = 12;
pub(crate) const GETSETELEM: u8 = 13;
pub(crate) const DELSETELEM: u8 = 14;
pub(crate) const NEWGEN: u8 = 15;
pub(crate) const GETGEN: u8 = 16;
/// Like DELSETELEM but a missing element is not an error (kernel >= 6.3).
pub(crate) const DESTROYSETELEM: u8 = 30;

// Attributes (NFTA_*).
pub(crate) const NFTA_TABLE_NAME: u16 = 1;
pub(crate) const NFTA_TABLE_HANDLE: u16 = 4;
pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
pub(crate) const NFTA_CHAIN_HOOK: u16 = 4;
pub(crate) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(crate) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(crate) const NFTA_CHAIN_POLICY: u16 = 5;
pub(crate) const NFTA_CHAIN_TYPE: u16 = 7;
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
pub(crate) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(crate) const NFTA_SET_TABLE: u16 = 1;
pub(crate) const NFTA_SET_NAME: u16 = 2;
pub(crate) const NFTA_SET_FLAGS: u16 = 3;
pub(crate) const NFTA_SET_KEY_TYPE: u16 = 4;
pub(crate) const NFTA_SET_KEY_LEN: u16 = 5;
pub(crate) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(crate) const NFTA_SET_DATA_LEN: u16 = 7;
pub(crate) const NFTA_SET_ID: u16 = 10;
pub(crate) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(crate) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(crate) const NFTA_GEN_ID: u16 = 1;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(crate) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(crate) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
pub(crate) const NFTA_VERDICT_CODE: u16 = 1;
pub(crate) const NFTA_VERDICT_CHAIN: u16 = 2;
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;

// Set flags, and the data type of verdict maps.
pub(crate) const NFT_SET_INTERVAL: u32 = 0x4;
pub(crate) const NFT_SET_MAP: u32 = 0x8;
pub(crate) const NFT_SET_TIMEOUT: u32 = 0x10;
pub(crate) const NFT_SET_EVAL: u32 = 0x20;
pub(crate) const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
pub(crate) const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

// Verdict codes.
/// NF_DROP.
pub(crate) const VERDICT_DROP: i32 = 0;
pub(crate) const NF_ACCEPT: u32 = 1;
pub(crate) const NFT_JUMP: i32 = -3;

// Hooks and their NAT priorities.
pub(crate) const NF_INET_PRE_ROUTING: u32 = 0;
pub(crate) const NF_INET_LOCAL_IN: u32 = 1;
pub(crate) const NF_INET_FORWARD: u32 = 2;
pub(crate) const NF_INET_LOCAL_OUT: u32 = 3;
pub(crate) const NF_INET_POST_ROUTING: u32 = 4;
/// NF_IP_PRI_NAT_DST ("dstnat"); nft 1.0.6 refuses the name on the output hook, not the value.
pub(crate) const PRIO_DSTNAT: i32 = -100;
/// NF_IP_PRI_NAT_SRC ("srcnat").
pub(crate) const PRIO_SRCNAT: i32 = 100;
