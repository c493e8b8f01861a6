//go:build !podnet_real_ocicni

package ocicni

import (
	"context"

	"github.com/containernetworking/cni/pkg/types"
)

// The types of CRI-O's github.com/cri-o/ocicni/pkg/ocicni, declared here with the same names,
// fields and methods because the Go module proxy this project builds from does not serve
// that module. A program that has the real module builds this package with
// `-tags podnet_real_ocicni`: then types_real.go makes each of these an alias of ocicni's own
// type and checks `var _ ocicni.CNIPlugin = (*Plugin)(nil)` at compile time.

// CNIPlugin is ocicni.CNIPlugin: the interface CRI-O calls.
type CNIPlugin interface {
	Name() string
	GetDefaultNetworkName() string
	SetUpPod(network PodNetwork) ([]NetResult, error)
	SetUpPodWithContext(ctx context.Context, network PodNetwork) ([]NetResult, error)
	TearDownPod(network PodNetwork) error
	TearDownPodWithContext(ctx context.Context, network PodNetwork) error
	GetPodNetworkStatus(network PodNetwork) ([]NetResult, error)
	GetPodNetworkStatusWithContext(ctx context.Context, network PodNetwork) ([]NetResult, error)
	GC(ctx context.Context, validPods []*PodNetwork) error
	Status() error
	StatusWithContext(ctx context.Context) error
	Shutdown() error
}

// PortMapping is ocicni.PortMapping: one hostPort of the pod.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP"`
}

// IpRange is ocicni.IpRange (the ipRanges capability; podnet refuses it: the node's pod CIDRs
// are the ranges).
type IpRange struct { //nolint:revive // ocicni's name
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

// BandwidthConfig is ocicni.BandwidthConfig (refused: podnet does not shape traffic).
type BandwidthConfig struct {
	IngressRate  uint64
	IngressBurst uint64
	EgressRate   uint64
	EgressBurst  uint64
}

// RuntimeConfig is ocicni.RuntimeConfig: the capability args of one network.
type RuntimeConfig struct {
	IP             string
	MAC            string
	PortMappings   []PortMapping
	Bandwidth      *BandwidthConfig
	IpRanges       [][]IpRange //nolint:revive // ocicni's name
	CgroupPath     string
	PodAnnotations *map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// NetAttachment is ocicni.NetAttachment: one network of a pod and its interface name.
type NetAttachment struct {
	Name   string
	Ifname string
}

// PodNetwork is ocicni.PodNetwork: the pod CRI-O sets up.
type PodNetwork struct {
	Name          string
	Namespace     string
	ID            string
	UID           string
	NetNS         string
	Networks      []NetAttachment
	RuntimeConfig map[string]RuntimeConfig
	Aliases       map[string][]string
}

// NetResult is ocicni.NetResult: the CNI result of one attachment.
type NetResult struct {
	NetAttachment
	Result types.Result
}

var _ CNIPlugin = (*Plugin)(nil)
