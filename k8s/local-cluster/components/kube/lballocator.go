package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// lbAllocator gives every Service of type LoadBalancer an address from a
// pool, the part of a cloud load balancer (or MetalLB, or kind's
// cloud-provider-kind) that a single-node cluster needs: kube-proxy already
// routes a Service's LoadBalancer address to its endpoints once the address
// is in the Service's status. Without it such Services stay <pending>, and
// Envoy Gateway never marks a Gateway Programmed (AddressNotAssigned).
func lbAllocator(args []string) int {
	flags := flag.NewFlagSet("lb-allocator", flag.ContinueOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of a client allowed to update services/status")
	pool := flags.String("pool", "", "CIDR to hand out addresses from, e.g. 10.246.0.0/24")
	interval := flags.Duration("interval", 2*time.Second, "how often to look for pending Services")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	prefix, err := netip.ParsePrefix(*pool)
	if err != nil || !prefix.Addr().Is4() {
		fmt.Fprintf(os.Stderr, "lb-allocator: --pool %q: want an IPv4 CIDR\n", *pool)
		return 2
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lb-allocator: %v\n", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lb-allocator: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		if err := assignPending(ctx, client, prefix.Masked()); err != nil {
			fmt.Fprintf(os.Stderr, "lb-allocator: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return 0
		case <-ticker.C:
		}
	}
}

func assignPending(ctx context.Context, client kubernetes.Interface, pool netip.Prefix) error {
	services, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing services: %w", err)
	}
	inUse := map[netip.Addr]bool{}
	var pending []corev1.Service
	for _, svc := range services.Items {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			pending = append(pending, svc)
			continue
		}
		for _, ingress := range svc.Status.LoadBalancer.Ingress {
			if addr, err := netip.ParseAddr(ingress.IP); err == nil {
				inUse[addr] = true
			}
		}
	}
	for i := range pending {
		svc := &pending[i]
		addr, ok := firstFree(pool, inUse)
		if !ok {
			return fmt.Errorf("pool %s exhausted: %s/%s stays pending", pool, svc.Namespace, svc.Name)
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)}}
		if _, err := client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("assigning %s to %s/%s: %w", addr, svc.Namespace, svc.Name, err)
		}
		inUse[addr] = true
		fmt.Printf("assigned %s to %s/%s\n", addr, svc.Namespace, svc.Name)
	}
	return nil
}

// firstFree skips the network address (.0) and the broadcast address.
func firstFree(pool netip.Prefix, inUse map[netip.Addr]bool) (netip.Addr, bool) {
	for addr := pool.Addr().Next(); pool.Contains(addr.Next()); addr = addr.Next() {
		if !inUse[addr] {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

func ptr[T any](v T) *T { return &v }
