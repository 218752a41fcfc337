package workflow

import sdkworkflow "go.temporal.io/sdk/workflow"

func workflowOptions() sdkworkflow.RegisterOptions { return sdkworkflow.RegisterOptions{Name: Name} }

// RegisterOptions are the options the workflow is registered with.
func RegisterOptions() sdkworkflow.RegisterOptions { return workflowOptions() }
