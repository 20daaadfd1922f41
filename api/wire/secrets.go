package wire

// Secret is OpenFaaS's secret shape. Values go in, never out: list
// answers names only.
type Secret struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Value     string `json:"value,omitempty"`
	RawValue  []byte `json:"rawValue,omitempty"`
}
