// argoexec for Argo's agent pods only: `argoexec agent init` and
// `argoexec agent main`, with argoexec's flags, env and exit codes, on
// Argo's own executor packages.
//
// Why a wrapper: argoexec's main package does not build on Linux from the
// published module. Its workflow/executor/osspecific package has no
// signal_linux.go in any version the Go module proxy serves here (v4.0.5,
// v3.7.x), so `go build github.com/argoproj/argo-workflows/v4/cmd/argoexec`
// fails with "undefined: Setpgid". The agent does not use that package:
// this wrapper wires Argo's AgentExecutor (workflow/executor/agent.go) and
// plugin RPC client exactly as cmd/argoexec/commands/agent.go does.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/argoproj/argo-workflows/v4"
	executorplugins "github.com/argoproj/argo-workflows/v4/pkg/plugins/executor"
	cmdutil "github.com/argoproj/argo-workflows/v4/util/cmd"
	kubecli "github.com/argoproj/argo-workflows/v4/util/kube/cli"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/workflow/common"
	"github.com/argoproj/argo-workflows/v4/workflow/executor"
	"github.com/argoproj/argo-workflows/v4/workflow/executor/plugins/rpc"
)

var (
	clientConfig clientcmd.ClientConfig
	logLevel     string
	glogLevel    int
	logFormat    string
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := root().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(64)
	}
}

func root() *cobra.Command {
	command := cobra.Command{
		Use: "argoexec",
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			cmdutil.SetGLogLevel(glogLevel)
			ctx, logger, err := cmdutil.CmdContextWithLogger(cmd, logLevel, logFormat)
			if err != nil {
				return err
			}
			cmd.SetContext(logging.WithLogger(ctx, logger.WithField("argo", true)))
			cmd.SilenceUsage = true
			return nil
		},
	}
	agent := cobra.Command{Use: "agent"}
	agent.AddCommand(&cobra.Command{Use: "init", RunE: agentInit})
	agent.AddCommand(&cobra.Command{Use: "main", RunE: agentMain})
	command.AddCommand(&agent)
	clientConfig = kubecli.AddKubectlFlagsToCmd(&command)
	command.PersistentFlags().StringVar(&logLevel, "loglevel", "info", "Set the logging level. One of: debug|info|warn|error")
	command.PersistentFlags().IntVar(&glogLevel, "gloglevel", 0, "Set the glog logging level")
	command.PersistentFlags().StringVar(&logFormat, "log-format", "text", "The formatter to use for logs. One of: text|json")
	return &command
}

func fromEnv(name string) ([]string, error) {
	var values []string
	if err := json.Unmarshal([]byte(os.Getenv(name)), &values); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return values, nil
}

func tokenFile(plugin string) string {
	return filepath.Join(common.VarRunArgoPath, plugin, "token")
}

// One random token per plugin, in the emptyDir each plugin's sidecar mounts
// its own subPath of.
func agentInit(cmd *cobra.Command, _ []string) error {
	names, err := fromEnv(common.EnvVarPluginNames)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.Mkdir(filepath.Dir(tokenFile(name)), 0o770); err != nil {
			return err
		}
		if err := os.WriteFile(tokenFile(name), []byte(rand.String(32)), 0o440); err != nil {
			return err
		}
	}
	return nil
}

func agentMain(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	config, err := clientConfig.ClientConfig()
	if err != nil {
		return err
	}
	version := argo.GetVersion()
	config = restclient.AddUserAgent(config, fmt.Sprintf("argo-workflows/%s argo-executor/%s", version.Version, "agent Executor"))
	namespace, _, err := clientConfig.Namespace()
	if err != nil {
		return err
	}
	clientSet, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	workflowName, ok := os.LookupEnv(common.EnvVarWorkflowName)
	if !ok {
		return fmt.Errorf("%s is not set", common.EnvVarWorkflowName)
	}
	workflowUID, ok := os.LookupEnv(common.EnvVarWorkflowUID)
	if !ok {
		return fmt.Errorf("%s is not set", common.EnvVarWorkflowUID)
	}
	addresses, err := fromEnv(common.EnvVarPluginAddresses)
	if err != nil {
		return err
	}
	names, err := fromEnv(common.EnvVarPluginNames)
	if err != nil {
		return err
	}
	if len(names) != len(addresses) {
		return fmt.Errorf("%d plugin names for %d addresses", len(names), len(addresses))
	}
	var plugins []executorplugins.TemplateExecutor
	for i, address := range addresses {
		token, err := os.ReadFile(tokenFile(names[i]))
		if err != nil {
			return err
		}
		plugins = append(plugins, rpc.New(address, string(token)))
	}
	return executor.NewAgentExecutor(clientSet, clientSet.RESTClient(), config, namespace, workflowName, workflowUID, plugins).Agent(ctx)
}
