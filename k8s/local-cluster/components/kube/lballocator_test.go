package main

import (
	"net/netip"
	"testing"
)

func TestFirstFreeSkipsUsedNetworkAndBroadcast(t *testing.T) {
	pool := netip.MustParsePrefix("10.246.0.0/30") // .0 network, .1 .2 usable, .3 broadcast
	used := map[netip.Addr]bool{}
	got, ok := firstFree(pool, used)
	if !ok || got != netip.MustParseAddr("10.246.0.1") {
		t.Fatalf("first free = %v %v, want 10.246.0.1", got, ok)
	}
	used[got] = true
	got, ok = firstFree(pool, used)
	if !ok || got != netip.MustParseAddr("10.246.0.2") {
		t.Fatalf("second free = %v %v, want 10.246.0.2", got, ok)
	}
	used[got] = true
	if got, ok = firstFree(pool, used); ok {
		t.Fatalf("pool of two exhausted, yet got %v", got)
	}
}
