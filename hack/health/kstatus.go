package main

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// kstatus computes the object's status exactly as kstatus consumers do (Flux's health checks,
// cli-utils' status poller): the library's Compute on the unstructured object.
func kstatus(obj map[string]interface{}) (result, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return result{}, fmt.Errorf("kstatus: %w", err)
	}
	return result{Status: res.Status.String(), Message: res.Message}, nil
}
