package main

import (
	"fmt"

	"github.com/selfdock/selfdock/policy"
)

type policyCmd struct {
	Check policyCheckCmd `cmd:"" help:"Check the policy file and print the effective policy."`
}

type policyCheckCmd struct{}

func (policyCheckCmd) Run() error {
	p, err := policy.Load()
	if err != nil {
		return err
	}
	fmt.Print(p)
	return nil
}
