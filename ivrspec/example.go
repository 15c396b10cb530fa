package ivrspec

import (
	"embed"
	"time"
)

//go:embed examples/*.yaml
var examples embed.FS

// Example returns the contract's example tree: main_menu takes 1, 2 or 3,
// department A or B, confirm 1; completion writes ivr_selection (the path
// as a JSON array) and ivr_status=completed; silence for timeout after the
// last accepted key writes ivr_status=timeout_fallback. Wrong keys are
// ignored. A zero timeout means 10s.
func Example(timeout time.Duration) *Flow {
	f, err := LoadExample("contract.yaml", Options{DefaultTimeout: timeout})
	if err != nil {
		panic("ivrspec: built-in example does not load: " + err.Error())
	}
	return f
}

// LoadExample loads one of the example flows built into the package, by
// file name: contract.yaml, bank.yaml or support.yaml.
func LoadExample(name string, opts Options) (*Flow, error) {
	data, err := examples.ReadFile("examples/" + name)
	if err != nil {
		return nil, err
	}
	return Parse(name, data, opts)
}
