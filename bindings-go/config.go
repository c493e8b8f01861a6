package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net/netip"
	"unsafe"
)

// Underlay is the node's own address on the network that connects the nodes (the VXLAN
// source address, and the next hop other nodes route this node's pods to) and, optionally,
// the interface holding it (empty: found by address when the node opens).
type Underlay struct {
	Address   netip.Addr
	Interface string
}

// IPRange limits the addresses handed out from the pod CIDR containing First and Last
// (inclusive).
type IPRange struct {
	First, Last netip.Addr
}

// NodeConfig describes one node: one network namespace, its pod CIDRs, bridge and records.
// Zero fields take the library's defaults. It is plain data: OpenNode and Validate copy it
// into the library and keep no reference.
type NodeConfig struct {
	// Name: [A-Za-z0-9_.-], 1..128 bytes, no "..". It names the default state dir and the
	// pods' netns pins. Required.
	Name string
	// PodCIDRs: at most one IPv4 and one IPv6 prefix (host bits clear). The first usable
	// address is the gateway; pods get the others. At least one is required.
	PodCIDRs []netip.Prefix
	// IPRanges restricts allocation to a range of a pod CIDR (at most one per CIDR; a later
	// one for the same CIDR replaces an earlier one).
	IPRanges []IPRange
	// ReservedIPs are never handed out.
	ReservedIPs []netip.Addr
	// Mode: ModeBridge (the default) or ModeRouted.
	Mode Mode
	// BridgeName (bridge mode): default "podnet0", 1..15 bytes.
	BridgeName string
	// MTU of the bridge and every veth, 576..65535; 0 means 1500.
	MTU uint32
	// NetnsPath binds the node to the network namespace at that absolute path (e.g.
	// "/run/netns/node1"); empty means the namespace of the thread that calls OpenNode.
	// A multithreaded Go program's threads normally share one, see the package docs.
	NetnsPath string
	// StateDir holds address reservations and sandbox records; default
	// "/run/podnet/<Name>". Keep it on tmpfs.
	StateDir string
	// NetnsDir is where pods' network namespaces are pinned; default "/run/netns".
	NetnsDir string

	// Multi-node. Underlay (a zero Address: none) is required before peers can be added;
	// unless CrossNode is CrossNodeRouted, opening the node creates the VXLAN device on it and
	// lowers the pod MTU to fit the encapsulation.
	Underlay Underlay
	// ClusterCIDRs: the pod range of the whole cluster, at most one per family; every pod CIDR
	// must lie inside the cluster CIDR of its family. Pod traffic leaving them is masqueraded
	// (unless DisableEgressMasquerade); without one nothing is.
	ClusterCIDRs []netip.Prefix
	// ServiceCIDRs: the ranges ClusterIPs come from; a service's ClusterIPs must lie inside
	// one, and other addresses in them are dropped. They must not overlap a pod CIDR.
	ServiceCIDRs []netip.Prefix
	// CrossNode: CrossNodeOverlay (the default), CrossNodeRouted or CrossNodeAuto.
	CrossNode CrossNodeMode
	// VXLANVNI: 1..16777215; 0 means 1 (flannel's). The same on every node.
	VXLANVNI uint32
	// VXLANPort: UDP port; 0 means 8472 (flannel's and Linux's). The same on every node.
	VXLANPort uint16
	// VXLANDevice names the VXLAN device; default "podnet.1".
	VXLANDevice string
	// KeepVXLANTxChecksumOffload forces podnet to leave the VXLAN device's TX checksum
	// offload alone, DisableVXLANTxChecksumOffload forces it off (setting both is an error).
	// By default podnet decides by the running kernel: off before Linux 5.7, whose NAT
	// rewrote zero UDP checksums of VXLAN packets (flannel's 63-second delays), on from 5.7
	// (off also disables segmentation offload: 4x less bulk throughput between pods).
	KeepVXLANTxChecksumOffload bool
	// DisableVXLANTxChecksumOffload: see KeepVXLANTxChecksumOffload.
	DisableVXLANTxChecksumOffload bool
	// DisableEgressMasquerade turns off masquerading of pod traffic leaving the cluster CIDRs.
	DisableEgressMasquerade bool
}

// Validate checks the configuration as OpenNode would, without touching the kernel or the
// disk.
func (c NodeConfig) Validate() error {
	cfg, err := c.build("podnet.NodeConfig.Validate")
	if err != nil {
		return err
	}
	defer C.podnet_node_config_free(cfg)
	var cerr *C.podnet_error
	st := C.podnet_node_config_validate(cfg, &cerr)
	return takeError(st, cerr, "podnet_node_config_validate")
}

// build copies c into a new C config (free it with podnet_node_config_free).
func (c *NodeConfig) build(op string) (*C.podnet_node_config, error) {
	return build(op, "node name", c.Name, "podnet_node_config_new", func(name *C.char, out **C.podnet_node_config, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_node_config_new(name, out, cerr)
	}, func(cfg *C.podnet_node_config) { C.podnet_node_config_free(cfg) }, c.apply)
}

func (c *NodeConfig) apply(cfg *C.podnet_node_config, set *setter) {
	op := set.op
	type setFn = func(*C.char, **C.podnet_error) C.podnet_status
	for _, p := range c.PodCIDRs {
		set.addr("pod CIDR", p.IsValid(), p.String(), "podnet_node_config_add_pod_cidr", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_add_pod_cidr(cfg, s, e)
		})
	}
	for _, r := range c.IPRanges {
		if set.err == nil && (!r.First.IsValid() || !r.Last.IsValid()) {
			set.err = argError(CodeInvalidAddress, op, "invalid IP range %v-%v", r.First, r.Last)
		}
		first, last := C.CString(r.First.String()), C.CString(r.Last.String())
		set.call("podnet_node_config_set_ip_range", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_ip_range(cfg, first, last, e)
		})
		C.free(unsafe.Pointer(first))
		C.free(unsafe.Pointer(last))
	}
	for _, ip := range c.ReservedIPs {
		set.addr("reserved IP", ip.IsValid(), ip.String(), "podnet_node_config_add_reserved_ip", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_add_reserved_ip(cfg, s, e)
		})
	}
	if c.Underlay.Address.IsValid() || c.Underlay.Interface != "" {
		if set.err == nil && !c.Underlay.Address.IsValid() {
			set.err = argError(CodeInvalidAddress, op, "underlay interface %q without an address", c.Underlay.Interface)
		}
		set.str("underlay interface", c.Underlay.Interface, "podnet_node_config_set_underlay", func(iface *C.char, e **C.podnet_error) C.podnet_status {
			if c.Underlay.Interface == "" {
				iface = nil // NULL: found by address
			}
			addr := C.CString(c.Underlay.Address.String())
			defer C.free(unsafe.Pointer(addr))
			return C.podnet_node_config_set_underlay(cfg, addr, iface, e)
		})
	}
	for _, p := range c.ClusterCIDRs {
		set.addr("cluster CIDR", p.IsValid(), p.String(), "podnet_node_config_add_cluster_cidr", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_add_cluster_cidr(cfg, s, e)
		})
	}
	for _, p := range c.ServiceCIDRs {
		set.addr("service CIDR", p.IsValid(), p.String(), "podnet_node_config_add_service_cidr", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_add_service_cidr(cfg, s, e)
		})
	}
	if c.KeepVXLANTxChecksumOffload && c.DisableVXLANTxChecksumOffload && set.err == nil {
		set.err = argError(CodeInvalidArgument, op, "KeepVXLANTxChecksumOffload and DisableVXLANTxChecksumOffload both set")
	}
	if c.KeepVXLANTxChecksumOffload || c.DisableVXLANTxChecksumOffload {
		disable := C.bool(c.DisableVXLANTxChecksumOffload)
		set.call("podnet_node_config_set_vxlan_disable_tx_checksum_offload", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_vxlan_disable_tx_checksum_offload(cfg, disable, e)
		})
	}
	// The numbers and flags, each when set (not zero).
	for _, o := range []struct {
		set bool
		cop string
		fn  func(**C.podnet_error) C.podnet_status
	}{
		{c.Mode != ModeDefault, "podnet_node_config_set_mode", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_mode(cfg, C.podnet_mode(c.Mode), e)
		}},
		{c.MTU != 0, "podnet_node_config_set_mtu", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_mtu(cfg, C.uint32_t(c.MTU), e)
		}},
		{c.CrossNode != CrossNodeDefault, "podnet_node_config_set_cross_node_mode", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_cross_node_mode(cfg, C.podnet_cross_node_mode(c.CrossNode), e)
		}},
		{c.VXLANVNI != 0, "podnet_node_config_set_vxlan_vni", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_vxlan_vni(cfg, C.uint32_t(c.VXLANVNI), e)
		}},
		{c.VXLANPort != 0, "podnet_node_config_set_vxlan_port", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_vxlan_port(cfg, C.uint16_t(c.VXLANPort), e)
		}},
		{c.DisableEgressMasquerade, "podnet_node_config_set_egress_masquerade", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_egress_masquerade(cfg, false, e)
		}},
	} {
		if o.set {
			set.call(o.cop, o.fn)
		}
	}
	// The strings, each when set (not empty).
	for _, s := range []struct {
		what, value, cop string
		set              setFn
	}{
		{"bridge name", c.BridgeName, "podnet_node_config_set_bridge_name", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_bridge_name(cfg, s, e)
		}},
		{"netns path", c.NetnsPath, "podnet_node_config_set_netns_path", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_netns_path(cfg, s, e)
		}},
		{"state dir", c.StateDir, "podnet_node_config_set_state_dir", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_state_dir(cfg, s, e)
		}},
		{"netns dir", c.NetnsDir, "podnet_node_config_set_netns_dir", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_netns_dir(cfg, s, e)
		}},
		{"VXLAN device", c.VXLANDevice, "podnet_node_config_set_vxlan_device", func(s *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_node_config_set_vxlan_device(cfg, s, e)
		}},
	} {
		if s.value != "" {
			set.str(s.what, s.value, s.cop, s.set)
		}
	}
}
