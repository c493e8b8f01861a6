// Package gocni implements containerd's cni.CNI interface (github.com/containerd/go-cni) over
// the in-process podnet library: no plugin binary is exec'd, no config directory is read;
// every pod is a podnet sandbox on one *podnet.Node.
//
// A containerd fork switches with one line, the constructor of its network plugin (in
// containerd's CRI plugin, where it calls cni.New with the conf and bin dirs):
//
//	// before: i, err := cni.New(cni.WithMinNetworkCount(n), cni.WithPluginConfDir(dir), ...)
//	i, err := podnetgocni.Open(podnet.NodeConfig{Name: "node1", PodCIDRs: cidrs}, podnetgocni.Options{})
//
// (or New over a *podnet.Node the program already has). The rest of containerd is unchanged:
// it keeps building its per-pod options with go-cni's own constructors (cni.WithLabels with
// K8S_POD_NAMESPACE/NAME/UID, cni.WithCapabilityPortMap, cni.WithCapability("ips", ...),
// cni.WithCapabilityDNS, ...) and calling Setup, Remove, Check, Status and Load.
//
// go-cni's options are functions over an opaque cni.Namespace whose fields are unexported,
// so no other package can read what they set. The adapter reads them the only way left: it
// makes a cni.Namespace, puts maps of its own in the unexported fields capabilityArgs and
// args (through reflect and unsafe, checked by name and type: a go-cni release that renames
// them makes Setup fail with a clear error, never misread), applies the options, and reads
// its maps. The same is done for Result's unexported raw results, so Result.Raw() works.
// That is why the swap is a single line and nothing else in the fork changes.
//
// Mapping. Setup creates the sandbox SandboxID(id, "eth0") (id itself, as podnet-cni names
// it) in the netns at path, labelled cni.network, cni.container_id, cni.ifname and, from the
// K8S_POD_* args, k8s.pod.namespace, k8s.pod.name, k8s.pod.uid, k8s.pod.infra_container_id.
// Capabilities: portMappings (with hostIP) and ips are honoured; mac, bandwidth and a
// non-empty ipRanges are refused with an error (podnet has no such setting); dns, cgroupPath,
// pod annotations and others are ignored. Load's options are accepted and ignored (the
// network is the node's), GetConfig describes the one podnet network.
//
// Context. Every call that can block takes a context. It is checked before each step, never
// during one: a create that has started runs to completion, or the library rolls it back when
// it fails; when the context has ended by the time the create returns, Setup deletes the
// sandbox and returns the context's error, so a pod is set up whole or not at all.
package gocni

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	cni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	podnet "github.com/podnet/podnet/bindings-go"
	"github.com/podnet/podnet/bindings-go/internal/attach"
)

// DefaultNetworkName is the network name when Options.NetworkName is empty (the `name` of
// the conflist in docs/cni.md).
const DefaultNetworkName = attach.DefaultNetworkName

// Options configures a CNI.
type Options struct {
	// NetworkName is the network's name (GetConfig, the cni.network label); default
	// DefaultNetworkName.
	NetworkName string
}

// CNI is a cni.CNI over a podnet node. It is safe for concurrent use.
type CNI struct{ b *attach.Base }

var _ cni.CNI = (*CNI)(nil)

// New returns a cni.CNI over node; Close leaves the node open (the caller closes it).
func New(node *podnet.Node, opts Options) *CNI {
	return &CNI{attach.NewBase(node, opts.NetworkName)}
}

// Open opens a node with cfg and returns a cni.CNI over it; Close closes the node.
func Open(cfg podnet.NodeConfig, opts Options) (*CNI, error) {
	return attach.OpenBase(cfg, opts.NetworkName, func(b *attach.Base) *CNI { return &CNI{b} })
}

// Node is the adapter's node.
func (c *CNI) Node() *podnet.Node { return c.b.Node }

// Close closes the node when Open made it (idempotent); the pods stay.
func (c *CNI) Close() error { return c.b.Close() }

// setUnexported stores val in the unexported field name of the struct v points to, after
// checking that the field exists with val's type.
func setUnexported(v any, name string, val any) error {
	s := reflect.ValueOf(v).Elem()
	f := s.FieldByName(name)
	if !f.IsValid() || f.Type() != reflect.TypeOf(val) {
		return fmt.Errorf("podnet gocni: this go-cni has no %s.%s of type %T: unsupported go-cni version",
			s.Type(), name, val)
	}
	// The field is addressable (v is a pointer) and of val's type, checked above; NewAt gives
	// a settable view of exactly that memory.
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(val))
	return nil
}

// namespaceArgs applies go-cni options to a cni.Namespace whose maps are ours, and returns
// what they set: capability args and CNI_ARGS.
func namespaceArgs(opts []cni.NamespaceOpts) (map[string]any, map[string]string, error) {
	caps, args := map[string]any{}, map[string]string{}
	ns := new(cni.Namespace)
	if err := setUnexported(ns, "capabilityArgs", caps); err != nil {
		return nil, nil, err
	}
	if err := setUnexported(ns, "args", args); err != nil {
		return nil, nil, err
	}
	for _, o := range opts {
		if err := o(ns); err != nil {
			return nil, nil, err
		}
	}
	return caps, args, nil
}

// capability decodes a capability arg into out through its JSON form (go-cni's own types
// and the plain maps/slices a caller of WithCapability passes alike).
func capability(caps map[string]any, name string, out any) (bool, error) {
	v, ok := caps[name]
	if !ok || v == nil {
		return false, nil
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		return false, fmt.Errorf("podnet gocni: capability %s: %v", name, err)
	}
	return true, nil
}

// request maps Setup's arguments to a create request.
func (c *CNI) request(id, path string, opts []cni.NamespaceOpts) (attach.Request, error) {
	r := attach.Request{Network: c.b.Network, ContainerID: id, IfName: attach.DefaultIfName, NetnsPath: path}
	caps, args, err := namespaceArgs(opts)
	if err != nil {
		return r, err
	}
	r.Labels = map[string]string{}
	for k, v := range args {
		if label, ok := attach.K8sArgs[k]; ok {
			r.Labels[label] = v
		}
	}
	for _, refused := range []string{"mac", "bandwidth"} {
		if _, ok := caps[refused]; ok {
			return r, fmt.Errorf("podnet gocni: capability %s is not supported", refused)
		}
	}
	var ranges [][]any
	if ok, err := capability(caps, "ipRanges", &ranges); err != nil {
		return r, err
	} else if ok && len(ranges) > 0 {
		return r, fmt.Errorf("podnet gocni: capability ipRanges is not supported (the node's pod CIDRs are the ranges)")
	}
	var ports []struct {
		HostPort      int32  `json:"hostPort"`
		ContainerPort int32  `json:"containerPort"`
		Protocol      string `json:"protocol"`
		HostIP        string `json:"hostIP"`
	}
	if _, err := capability(caps, "portMappings", &ports); err != nil {
		return r, err
	}
	for _, m := range ports {
		pm, err := attach.PortMapping(m.HostPort, m.ContainerPort, m.Protocol, m.HostIP)
		if err != nil {
			return r, fmt.Errorf("podnet gocni: %w", err)
		}
		r.Ports = append(r.Ports, pm)
	}
	var ips []string
	if _, err := capability(caps, "ips", &ips); err != nil {
		return r, err
	}
	for _, s := range ips {
		ip, err := attach.ParseIP(s)
		if err != nil {
			return r, fmt.Errorf("podnet gocni: %w", err)
		}
		r.IPs = append(r.IPs, ip)
	}
	return r, nil
}

// result is go-cni's Result of one sandbox, with Raw() giving its CNI 1.0.0 result.
func result(sb *podnet.Sandbox) (*cni.Result, error) {
	raw := attach.Result(sb)
	conf := &cni.Config{Mac: sb.MAC.String(), Sandbox: sb.NetnsPath}
	for _, p := range sb.IPs {
		conf.IPConfigs = append(conf.IPConfigs, &cni.IPConfig{IP: p.Addr().AsSlice(), Gateway: attach.Gateway(sb, p.Addr())})
	}
	r := &cni.Result{Interfaces: map[string]*cni.Config{sb.IfName: conf}, Routes: raw.Routes}
	if err := setUnexported(r, "raw", []*types100.Result{raw}); err != nil {
		return nil, err
	}
	return r, nil
}

// Setup creates the pod's sandbox in the netns at path (see the package docs for the
// options and the context). Idempotent for the same options; different options for the same
// id give podnet.ErrAlreadyExists.
func (c *CNI) Setup(ctx context.Context, id string, path string, opts ...cni.NamespaceOpts) (*cni.Result, error) {
	if path == "" {
		return nil, fmt.Errorf("podnet gocni: sandbox %s: no network namespace", id)
	}
	req, err := c.request(id, path, opts)
	if err != nil {
		return nil, err
	}
	sbs, err := attach.SetUp(ctx, c.b.Node, []attach.Request{req})
	if err != nil {
		return nil, err
	}
	return result(sbs[0])
}

// SetupSerially is Setup (there is one network).
func (c *CNI) SetupSerially(ctx context.Context, id string, path string, opts ...cni.NamespaceOpts) (*cni.Result, error) {
	return c.Setup(ctx, id, path, opts...)
}

// Remove deletes the pod's sandbox: addresses, host ports, veth (the netns stays: it is the
// runtime's). Idempotent, and works when the netns is already gone.
func (c *CNI) Remove(ctx context.Context, id string, path string, opts ...cni.NamespaceOpts) error {
	return attach.TearDown(ctx, c.b.Node, []string{attach.SandboxID(id, attach.DefaultIfName)})
}

// Check compares the pod's kernel state with its record: an error lists the differences (or
// says the pod is not set up: podnet.ErrNotFound).
func (c *CNI) Check(ctx context.Context, id string, path string, opts ...cni.NamespaceOpts) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rep, err := c.b.Node.CheckSandbox(attach.SandboxID(id, attach.DefaultIfName))
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("podnet gocni: sandbox %s: %s", rep.ID, strings.Join(rep.Problems, "; "))
	}
	return nil
}

// Load accepts go-cni's load options and ignores them: the network is the node's, there is no
// config file to read. It returns nil.
func (c *CNI) Load(opts ...cni.Opt) error { return nil }

// Status is nil when the node is open and answers.
func (c *CNI) Status() error {
	if err := attach.Status(context.Background(), c.b.Node); err != nil {
		return fmt.Errorf("podnet gocni: not ready: %w", err)
	}
	return nil
}

// GetConfig describes the one podnet network, as the conflist of docs/cni.md would load.
func (c *CNI) GetConfig() *cni.ConfigResult {
	conf := &types.NetConf{
		CNIVersion:   attach.CNIVersion,
		Name:         c.b.Network,
		Type:         "podnet",
		Capabilities: map[string]bool{"portMappings": true, "ips": true},
	}
	src, _ := json.Marshal(conf)
	list := &cni.NetworkConfList{
		Name:       c.b.Network,
		CNIVersion: attach.CNIVersion,
		Plugins:    []*cni.NetworkConf{{Network: conf, Source: string(src)}},
		Source:     fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":[%s]}`, attach.CNIVersion, c.b.Network, src),
	}
	return &cni.ConfigResult{Prefix: "eth", Networks: []*cni.ConfNetwork{{Config: list, IFName: attach.DefaultIfName}}}
}
