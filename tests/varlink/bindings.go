// SPDX-License-Identifier: MIT
//
// Go bindings generated from io.killswitch.varlink by varlink-go (the reference
// implementation's interface generator), used as a typed client would use them:
// Status, Policies and Show decode into the generated types, and NoSuchPolicy comes back
// as the generated error type with its `policy` field.
//
// Usage: bindings unix:PATH   (built by tests/e2e/test-varlink.sh next to the generated
// package iokillswitch in a scratch GOPATH)
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/varlink/go/varlink"
	"iokillswitch"
)

var failed = 0

func check(ok bool, format string, a ...interface{}) {
	if ok {
		fmt.Printf("PASS: varlink-go bindings: "+format+"\n", a...)
	} else {
		failed++
		fmt.Printf("FAIL: varlink-go bindings: "+format+"\n", a...)
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := varlink.NewConnection(ctx, os.Args[1])
	if err != nil {
		check(false, "connect: %v", err)
		os.Exit(1)
	}
	defer conn.Close()

	state, policy, _, _, _, _, _, _, _, _, _, _, triggers, uplinks, _, _, dropped, _, drops, _, _, _, applied, protection, layers, _, err :=
		iokillswitch.Status().Call(ctx, conn)
	check(err == nil && (state == "normal" || state == "isolated") && applied && protection != "" &&
		triggers.Paths != nil && layers != nil,
		"Status() -> state %q, policy %v, uplinks %v, dropped %d packets, drops from %d sources, applied %v, protection %q, layers %v (err %v)",
		state, policy, uplinks, dropped.Packets, drops.Sources, applied, protection, layers, err)

	tuples, overflow, _, _, _, _, _, _, _, err := iokillswitch.Drops().Call(ctx, conn, nil, nil)
	check(err == nil, "Drops(null, null) -> %d tuples, overflow %d (err %v)", len(tuples), overflow, err)

	policies, failedPolicies, err := iokillswitch.Policies().Call(ctx, conn)
	check(err == nil && len(policies) > 0, "Policies() -> %d policies, %d failed (err %v)",
		len(policies), len(failedPolicies), err)

	name, ruleset, _, err := iokillswitch.Show().Call(ctx, conn, nil)
	check(err == nil && name == "isolate" && len(ruleset) > 0, "Show(null) -> policy %q, %d bytes of ruleset (err %v)",
		name, len(ruleset), err)

	nope := "no-such-policy"
	_, _, _, err = iokillswitch.Show().Call(ctx, conn, &nope)
	e, ok := err.(*iokillswitch.NoSuchPolicy)
	check(ok && e.Policy == nope && e.Message != "", "Show(%q) -> *NoSuchPolicy{Policy: %q} (err %v)", nope,
		func() string {
			if ok {
				return e.Policy
			}
			return ""
		}(), err)
	if failed > 0 {
		os.Exit(1)
	}
}
