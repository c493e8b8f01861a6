package podnet

import (
	"net"
	"net/netip"
)

// Sandbox is one pod network as created or recorded. It is a copy: it owns no C memory,
// needs no Close and stays valid after the pod is deleted or the node closed.
type Sandbox struct {
	ID string
	// IfName is the interface name inside the pod ("eth0").
	IfName string
	// NetnsPath is the pod's network namespace (e.g. "/run/netns/pn-node1-web-1"): open it
	// and setns(2) into it to run the pod (see the package docs on threads).
	NetnsPath string
	// OwnsNetns is true when podnet created the netns (and removes it on delete).
	OwnsNetns bool
	// HostIfName is the host end of the pod's veth.
	HostIfName string
	// MAC of the pod interface.
	MAC net.HardwareAddr
	// Mode is how the pod is attached (ModeBridge or ModeRouted).
	Mode Mode
	// IPs are the pod's addresses (one per pod CIDR of the node) with the prefix length
	// configured on the interface: 10.1.0.2/24 (bridge) or 10.1.0.2/32 (routed). IPs[i].Addr()
	// is the address itself.
	IPs []netip.Prefix
	// Gateways are the default gateways, one per address family.
	Gateways []netip.Addr
	// Ports are the host port mappings.
	Ports []PortMapping
	// Labels are the metadata kept with the sandbox (SandboxSpec.Labels); nil when none.
	Labels map[string]string
}

// IPv4 returns the pod's IPv4 address, if it has one.
func (s *Sandbox) IPv4() (netip.Addr, bool) {
	for _, p := range s.IPs {
		if p.Addr().Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// IPv6 returns the pod's IPv6 address, if it has one.
func (s *Sandbox) IPv6() (netip.Addr, bool) {
	for _, p := range s.IPs {
		if p.Addr().Is6() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}
