package main

import (
	"fmt"
)

type policyCmd struct {
	Check policyCheckCmd `cmd:"" help:"Check the policy file and print the effective policy."`
}

type policyCheckCmd struct{}

func (policyCheckCmd) Run() error {
	p, err := loadPolicy()
	if err != nil {
		return err
	}
	fmt.Print(p)
	return nil
}
