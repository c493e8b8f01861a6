package podnet

// #include <podnet.h>
import "C"

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

// copySandbox reads every accessor of a C sandbox into a Go value. sb stays owned by the
// caller (a created sandbox or one borrowed from a list).
func copySandbox(sb *C.podnet_sandbox, op string) (*Sandbox, error) {
	s := &Sandbox{
		ID:         goString(C.podnet_sandbox_id(sb)),
		IfName:     goString(C.podnet_sandbox_ifname(sb)),
		NetnsPath:  goString(C.podnet_sandbox_netns_path(sb)),
		OwnsNetns:  bool(C.podnet_sandbox_owns_netns(sb)),
		HostIfName: goString(C.podnet_sandbox_host_ifname(sb)),
		Mode:       Mode(C.podnet_sandbox_mode(sb)),
	}
	if mac := goString(C.podnet_sandbox_mac(sb)); mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, internalError(op, "sandbox %s: MAC %q: %v", s.ID, mac, err)
		}
		s.MAC = hw
	}
	if n := int(C.podnet_sandbox_ip_count(sb)); n > 0 {
		s.IPs = make([]netip.Prefix, 0, n)
		for i := 0; i < n; i++ {
			str := goString(C.podnet_sandbox_ip_at(sb, C.size_t(i)))
			p, err := netip.ParsePrefix(str)
			if err != nil {
				return nil, internalError(op, "sandbox %s: address %q: %v", s.ID, str, err)
			}
			s.IPs = append(s.IPs, p)
		}
	}
	if n := int(C.podnet_sandbox_gateway_count(sb)); n > 0 {
		s.Gateways = make([]netip.Addr, 0, n)
		for i := 0; i < n; i++ {
			str := goString(C.podnet_sandbox_gateway_at(sb, C.size_t(i)))
			a, err := netip.ParseAddr(str)
			if err != nil {
				return nil, internalError(op, "sandbox %s: gateway %q: %v", s.ID, str, err)
			}
			s.Gateways = append(s.Gateways, a)
		}
	}
	if n := int(C.podnet_sandbox_port_count(sb)); n > 0 {
		s.Ports = make([]PortMapping, 0, n)
		for i := 0; i < n; i++ {
			ci := C.size_t(i)
			pm := PortMapping{
				Protocol:      Protocol(C.podnet_sandbox_port_protocol(sb, ci)),
				HostPort:      uint16(C.podnet_sandbox_port_host_port(sb, ci)),
				ContainerPort: uint16(C.podnet_sandbox_port_container_port(sb, ci)),
			}
			if str := C.podnet_sandbox_port_host_ip(sb, ci); str != nil {
				a, err := netip.ParseAddr(C.GoString(str))
				if err != nil {
					return nil, internalError(op, "sandbox %s: host IP %q: %v", s.ID, C.GoString(str), err)
				}
				pm.HostIP = a
			}
			s.Ports = append(s.Ports, pm)
		}
	}
	return s, nil
}

// goString copies a C string owned by a podnet object; NULL gives "".
func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}
