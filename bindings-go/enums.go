package podnet

// The Go mirrors of include/podnet.h's enums, together as in the header: each constant is
// the C constant itself, and one table names the values for String (a value a later library
// adds prints as "kind(N)"; Code's names are the library's, podnet_status_str).

// #include <podnet.h>
import "C"

import "github.com/podnet/podnet/bindings-go/internal/cabi"

type (
	// Mode is how pods attach to the node.
	Mode uint32
	// CrossNodeMode is how packets reach other nodes' pods.
	CrossNodeMode uint32
	// Protocol is the transport protocol of a host port mapping (the IANA protocol number).
	Protocol uint32
	// TrafficPolicy is a service's external traffic policy (podnet_traffic_policy).
	TrafficPolicy uint32
	// LogLevel is the severity of a log record, and the threshold given to SetLogFunc.
	LogLevel uint32
)

// The values, one group per type.
const (
	// ModeDefault leaves the choice to the library (bridge). A Sandbox never reports it.
	ModeDefault Mode = C.PODNET_MODE_UNKNOWN
	// ModeBridge: host veths join a Linux bridge holding the gateway address (CNI bridge
	// plugin style).
	ModeBridge Mode = C.PODNET_MODE_BRIDGE
	// ModeRouted: no bridge; /32 (/128) pod addresses, a host route per pod, link-local
	// gateway 169.254.1.1 / fe80::1 answered by the host veth (Calico style).
	ModeRouted Mode = C.PODNET_MODE_ROUTED

	// CrossNodeDefault leaves the choice to the library (overlay).
	CrossNodeDefault CrossNodeMode = C.PODNET_CROSS_NODE_MODE_UNKNOWN
	// CrossNodeOverlay: VXLAN to every peer (flannel-compatible: VNI 1, UDP port 8472 by
	// default).
	CrossNodeOverlay CrossNodeMode = C.PODNET_CROSS_NODE_MODE_OVERLAY
	// CrossNodeRouted: one route per peer pod CIDR via the peer's underlay address; every
	// peer must be on-link. No VXLAN device.
	CrossNodeRouted CrossNodeMode = C.PODNET_CROSS_NODE_MODE_ROUTED
	// CrossNodeAuto: routed to peers on this node's underlay subnet, overlay to the rest.
	CrossNodeAuto CrossNodeMode = C.PODNET_CROSS_NODE_MODE_AUTO

	// Protocols of podnet_protocol.
	ProtocolTCP  Protocol = C.PODNET_PROTOCOL_TCP
	ProtocolUDP  Protocol = C.PODNET_PROTOCOL_UDP
	ProtocolSCTP Protocol = C.PODNET_PROTOCOL_SCTP

	// Traffic policies; the zero value means TrafficPolicyCluster.
	TrafficPolicyCluster TrafficPolicy = C.PODNET_TRAFFIC_POLICY_CLUSTER
	TrafficPolicyLocal   TrafficPolicy = C.PODNET_TRAFFIC_POLICY_LOCAL

	// The codes of include/podnet.h (PODNET_STATUS_*).
	CodeOK              Code = C.PODNET_STATUS_OK
	CodeInvalidArgument Code = C.PODNET_STATUS_INVALID_ARGUMENT
	CodeNullArgument    Code = C.PODNET_STATUS_NULL_ARGUMENT
	CodeInvalidUTF8     Code = C.PODNET_STATUS_INVALID_UTF8
	CodeNotFound        Code = C.PODNET_STATUS_NOT_FOUND
	CodeAlreadyExists   Code = C.PODNET_STATUS_ALREADY_EXISTS
	CodeExhausted       Code = C.PODNET_STATUS_EXHAUSTED
	CodeConflict        Code = C.PODNET_STATUS_CONFLICT
	CodePermission      Code = C.PODNET_STATUS_PERMISSION
	CodeKernel          Code = C.PODNET_STATUS_KERNEL
	CodeIO              Code = C.PODNET_STATUS_IO
	CodeInconsistent    Code = C.PODNET_STATUS_INCONSISTENT
	CodeInternal        Code = C.PODNET_STATUS_INTERNAL
	CodePanic           Code = C.PODNET_STATUS_PANIC
	CodeTooLong         Code = C.PODNET_STATUS_TOO_LONG
	CodeInvalidAddress  Code = C.PODNET_STATUS_INVALID_ADDRESS
	// CodeNotReady: the node is not ready for pods yet (its cluster agent is still starting).
	CodeNotReady Code = C.PODNET_STATUS_NOT_READY

	// Levels of podnet_log_level.
	LogOff   LogLevel = C.PODNET_LOG_LEVEL_OFF
	LogError LogLevel = C.PODNET_LOG_LEVEL_ERROR
	LogWarn  LogLevel = C.PODNET_LOG_LEVEL_WARN
	LogInfo  LogLevel = C.PODNET_LOG_LEVEL_INFO
	LogDebug LogLevel = C.PODNET_LOG_LEVEL_DEBUG
	LogTrace LogLevel = C.PODNET_LOG_LEVEL_TRACE
)

// enumNames names the values of every enum above that has a String method. The keys are the
// typed constants, so ModeRouted and CrossNodeRouted are different entries.
var enumNames = map[any]string{
	ModeDefault: "default",
	ModeBridge:  "bridge",
	ModeRouted:  "routed",

	CrossNodeDefault: "default",
	CrossNodeOverlay: "overlay",
	CrossNodeRouted:  "routed",
	CrossNodeAuto:    "auto",

	ProtocolTCP:  "tcp",
	ProtocolUDP:  "udp",
	ProtocolSCTP: "sctp",

	LogOff:   "off",
	LogError: "error",
	LogWarn:  "warn",
	LogInfo:  "info",
	LogDebug: "debug",
	LogTrace: "trace",
}

// String returns "bridge", "routed", "default" or "mode(N)".
func (m Mode) String() string { return cabi.EnumString(m, enumNames, "mode") }

// String returns "overlay", "routed", "auto", "default" or "cross_node_mode(N)".
func (m CrossNodeMode) String() string { return cabi.EnumString(m, enumNames, "cross_node_mode") }

// String returns "tcp", "udp", "sctp" or "protocol(N)".
func (p Protocol) String() string { return cabi.EnumString(p, enumNames, "protocol") }

// String returns "off", "error", "warn", "info", "debug", "trace" or "level(N)".
func (l LogLevel) String() string { return cabi.EnumString(l, enumNames, "level") }
