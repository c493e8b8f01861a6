package podnet

/*
#include <stdlib.h>
#include <podnet.h>
*/
import "C"

import (
	"net"
	"net/netip"
	"sort"
	"unsafe"
)

// PortMapping maps a host port to a pod port (a pod spec's hostPort).
type PortMapping struct {
	Protocol Protocol
	// HostIP limits the mapping to one node address; the zero Addr means every node address.
	HostIP        netip.Addr
	HostPort      uint16
	ContainerPort uint16
}

// cHostIP is the mapping's host IP as a new C string (free it), NULL for every node address.
func (p *PortMapping) cHostIP() *C.char {
	if !p.HostIP.IsValid() {
		return nil
	}
	return C.CString(p.HostIP.String())
}

// SandboxSpec is what the runtime asks for one pod. Zero fields take the library's defaults.
// It is plain data: CreateSandbox copies it into the library and keeps no reference.
type SandboxSpec struct {
	// ID of the sandbox: [A-Za-z0-9_.-], 1..128 bytes, no "..". Required.
	ID string
	// IfName is the pod's interface name; default "eth0".
	IfName string
	// NetnsPath attaches the pod to a network namespace the runtime made (absolute path);
	// empty means podnet creates and pins one (and removes it on delete).
	NetnsPath string
	// IPs asks for specific addresses, at most one per family, each assignable from the
	// node's pod CIDR of that family; families not listed get a dynamic address.
	IPs []netip.Addr
	// Ports are the host port mappings to install.
	Ports []PortMapping
	// Labels are metadata kept with the sandbox and returned by GetSandbox and
	// ListSandboxes (pod namespace, name, uid, ...): keys 1..253 bytes of [A-Za-z0-9_./-],
	// values up to 4 KiB, at most 64.
	Labels map[string]string
	// Mode attaches this pod differently from the node's mode (ModeDefault: the node's). A
	// routed pod on a bridge node gets a /32 (/128) address and a host route and reaches the
	// bridge pods through proxy ARP (NDP); a bridge pod on a routed node makes the node create
	// its bridge on first use.
	Mode Mode
	// MAC is the pod interface's MAC address (unicast); nil: podnet derives 0a:58:<IPv4>.
	MAC net.HardwareAddr
}

// build copies s into a new C spec (free it with podnet_sandbox_spec_free).
func (s *SandboxSpec) build(op string) (*C.podnet_sandbox_spec, error) {
	return build(op, "sandbox id", s.ID, "podnet_sandbox_spec_new", func(id *C.char, out **C.podnet_sandbox_spec, cerr **C.podnet_error) C.podnet_status {
		return C.podnet_sandbox_spec_new(id, out, cerr)
	}, func(spec *C.podnet_sandbox_spec) { C.podnet_sandbox_spec_free(spec) }, s.apply)
}

func (s *SandboxSpec) apply(spec *C.podnet_sandbox_spec, set *setter) {
	if s.IfName != "" {
		set.str("interface name", s.IfName, "podnet_sandbox_spec_set_ifname", func(v *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_set_ifname(spec, v, e)
		})
	}
	if s.NetnsPath != "" {
		set.str("netns path", s.NetnsPath, "podnet_sandbox_spec_set_netns_path", func(v *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_set_netns_path(spec, v, e)
		})
	}
	if len(s.MAC) > 0 {
		set.str("MAC", s.MAC.String(), "podnet_sandbox_spec_set_mac", func(v *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_set_mac(spec, v, e)
		})
	}
	if s.Mode != ModeDefault {
		set.call("podnet_sandbox_spec_set_mode", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_set_mode(spec, C.podnet_mode(s.Mode), e)
		})
	}
	for _, ip := range s.IPs {
		set.addr("sandbox IP", ip.IsValid(), ip.String(), "podnet_sandbox_spec_add_ip", func(v *C.char, e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_add_ip(spec, v, e)
		})
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first bad label is the one reported, every time
	for _, k := range keys {
		value := s.Labels[k]
		if set.err == nil {
			set.err = checkString(set.op, "label", k+value)
		}
		set.str("label", k, "podnet_sandbox_spec_set_label", func(ck *C.char, e **C.podnet_error) C.podnet_status {
			cv := C.CString(value)
			defer C.free(unsafe.Pointer(cv))
			return C.podnet_sandbox_spec_set_label(spec, ck, cv, e)
		})
	}
	for _, p := range s.Ports {
		hostIP := p.cHostIP()
		set.call("podnet_sandbox_spec_add_port", func(e **C.podnet_error) C.podnet_status {
			return C.podnet_sandbox_spec_add_port(spec, C.podnet_protocol(p.Protocol), hostIP,
				C.uint16_t(p.HostPort), C.uint16_t(p.ContainerPort), e)
		})
		C.free(unsafe.Pointer(hostIP))
	}
}
