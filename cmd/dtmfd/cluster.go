package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/transport/store"
)

// clusterSettings say whether and how dtmfd runs as one of several
// replicas. Off, it runs exactly as a single process.
type clusterSettings struct {
	Mode     string
	Name     string
	Host     string
	Port     int
	StoreURL string
	// DiscoveryPort and Peers are local mode's membership: each member
	// answers on DiscoveryPort, and polls every address in Peers.
	DiscoveryPort int
	Peers         string
}

// bind registers the cluster settings.
func (c *clusterSettings) bind(b *binder) {
	str := b.str
	str(&c.Mode, "cluster", "DTMFD_CLUSTER", "off",
		"run as one of several replicas: off, local (members on this machine) or kubernetes")
	str(&c.Name, "cluster-name", "DTMFD_CLUSTER_NAME", "dtmfd",
		"cluster name; replicas of one name share calls")
	str(&c.Host, "cluster-host", "DTMFD_CLUSTER_HOST", "",
		"address other replicas reach this one at (the pod IP; default: loopback in local mode)")
	b.num(&c.Port, "cluster-port", "DTMFD_CLUSTER_PORT", 6330,
		"port replicas talk to each other on")
	b.num(&c.DiscoveryPort, "cluster-discovery-port", "DTMFD_CLUSTER_DISCOVERY_PORT", 6340,
		"local mode: port this member answers its peers' membership checks on (all interfaces)")
	str(&c.Peers, "cluster-peers", "DTMFD_CLUSTER_PEERS", "",
		"local mode: every member's discovery address, host:port, comma separated, "+
			"this one's included (default: this member alone)")
	str(&c.StoreURL, "store-url", "DTMFD_STORE_URL", "",
		"Redis URL holding the calls' state, redis://[:password@]host:port/db; required with DTMFD_CLUSTER")
}

// enabled reports whether dtmfd joins a cluster.
func (c *clusterSettings) enabled() bool { return c.Mode != "" && c.Mode != "off" }

// check rejects cluster settings dtmfd cannot run with.
func (c *clusterSettings) check() []error {
	var errs []error
	switch c.Mode {
	case "", "off", "local", "kubernetes":
	default:
		errs = append(errs, fmt.Errorf("DTMFD_CLUSTER: want off, local or kubernetes, got %q", c.Mode))
	}
	if c.enabled() && c.StoreURL == "" {
		errs = append(errs, errors.New("DTMFD_STORE_URL: required with DTMFD_CLUSTER"))
	}
	if c.Mode == "kubernetes" && c.Host == "" {
		errs = append(errs, errors.New("DTMFD_CLUSTER_HOST: required with DTMFD_CLUSTER=kubernetes (the pod IP)"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("DTMFD_CLUSTER_PORT: want a port, got %d", c.Port))
	}
	if c.DiscoveryPort < 1 || c.DiscoveryPort > 65535 {
		errs = append(errs, fmt.Errorf("DTMFD_CLUSTER_DISCOVERY_PORT: want a port, got %d", c.DiscoveryPort))
	}
	if c.Mode == "local" {
		for _, p := range c.peers() {
			if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
				errs = append(errs, fmt.Errorf("DTMFD_CLUSTER_PEERS: want host:port, got %q", p))
			}
		}
	}
	return errs
}

// startEngine starts the engine alone or as a cluster member. With a
// cluster, singleton (the voice stream, when there is one) runs on one
// member at a time, and the returned closer releases the store after the
// engine is closed.
func startEngine(ctx context.Context, cs clusterSettings, tenant string, cfg actors.Config,
	singleton func(context.Context) error) (*actors.Engine, io.Closer, error) {
	if !cs.enabled() {
		eng, err := actors.Start(cfg)
		return eng, nopCloser{}, err
	}

	st, err := store.Open(ctx, store.Options{URL: cs.StoreURL, Prefix: cs.Name})
	if err != nil {
		return nil, nil, fmt.Errorf("DTMFD_STORE_URL: %w", err)
	}
	provider, host, err := clusterProvider(cs)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	eng, err := actors.StartCluster(cfg, actors.ClusterConfig{
		Name:           cs.Name,
		Host:           host,
		Port:           cs.Port,
		AdvertisedHost: cs.Host,
		Provider:       provider,
		Store:          st,
		Singleton:      singleton,
		SingletonKey:   "stream-" + tenant,
	})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return eng, st, nil
}

// peers lists local mode's discovery addresses; without any, the member
// finds only itself.
func (c *clusterSettings) peers() []string {
	var out []string
	for p := range strings.SplitSeq(c.Peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(c.DiscoveryPort))}
	}
	return out
}

// localRefresh is how often a local member polls its peers: a crashed
// member leaves the others' member list within about this long.
const localRefresh = time.Second

// clusterProvider is how members find each other, and the host to bind.
func clusterProvider(cs clusterSettings) (cluster.ClusterProvider, string, error) {
	if cs.Mode == "kubernetes" {
		p, err := k8s.New()
		if err != nil {
			return nil, "", fmt.Errorf("DTMFD_CLUSTER=kubernetes: %w", err)
		}
		return p, "0.0.0.0", nil
	}
	host := cs.Host
	if host == "" {
		host = "127.0.0.1"
	}
	// Several processes on one machine (or a fixed set of hosts) find
	// each other through protoactor's automanaged provider: each member
	// serves its own description over HTTP and polls the listed peers.
	return automanaged.NewWithConfig(localRefresh, cs.DiscoveryPort, cs.peers()...), host, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }
