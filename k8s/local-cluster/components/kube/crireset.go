package main

import (
	"context"
	"fmt"
	"os"
	"time"

	criclient "k8s.io/cri-client/pkg"
)

// criReset stops and removes every pod sandbox of the container runtime at
// the given endpoint. Stopping a sandbox through CRI is what tears down its
// CNI network (veth, IP lease, masquerade rules) and its network namespace;
// killing the runtime instead would leave them behind on the host. The
// cluster runner calls it on `down` after the kubelet has stopped.
func criReset(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: kube cri-reset unix:///path/to/containerd.sock")
		return 2
	}
	runtime, err := criclient.NewRemoteRuntimeService(args[0], 10*time.Second, nil, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-reset: connecting to %s: %v\n", args[0], err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sandboxes, err := runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cri-reset: listing pod sandboxes: %v\n", err)
		return 1
	}
	failed := 0
	for _, sandbox := range sandboxes {
		name := sandbox.GetMetadata().GetNamespace() + "/" + sandbox.GetMetadata().GetName()
		if err := runtime.StopPodSandbox(ctx, sandbox.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: stopping %s: %v\n", name, err)
			failed++
			continue
		}
		if err := runtime.RemovePodSandbox(ctx, sandbox.GetId()); err != nil {
			fmt.Fprintf(os.Stderr, "cri-reset: removing %s: %v\n", name, err)
			failed++
			continue
		}
		fmt.Printf("removed pod sandbox %s\n", name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}
