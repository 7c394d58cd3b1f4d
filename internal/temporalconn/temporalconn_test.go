package temporalconn

import (
	"flag"
	"strings"
	"testing"
)

func TestFromEnvReadsTheTemporalCLIsNames(t *testing.T) {
	env := map[string]string{
		"TEMPORAL_ADDRESS":                 "temporal.example:7233",
		"TEMPORAL_NAMESPACE":               "migrations",
		"TEMPORAL_TLS_CLIENT_CERT_PATH":    "/new/cert.pem", // the current name loses to the older one the README documents
		"TEMPORAL_TLS_CERT":                "/etc/cutover/client.pem",
		"TEMPORAL_TLS_KEY":                 "/etc/cutover/client.key",
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/etc/cutover/ca.pem",
		"TEMPORAL_TLS_SERVER_NAME":         "frontend.internal",
		"TEMPORAL_API_KEY":                 "k3y",
	}
	o := FromEnv(func(k string) string { return env[k] })
	want := Options{Address: "temporal.example:7233", Namespace: "migrations", CertPath: "/etc/cutover/client.pem",
		KeyPath: "/etc/cutover/client.key", CAPath: "/etc/cutover/ca.pem", ServerName: "frontend.internal", APIKey: "k3y"}
	if o != want {
		t.Fatalf("FromEnv = %+v, want %+v", o, want)
	}
	if !o.Secure() {
		t.Error("TLS options did not turn TLS on")
	}
	if d := o.Describe(); strings.Contains(d, "k3y") || !strings.Contains(d, "mTLS, API key") {
		t.Errorf("Describe = %q: want the kind of connection and never the key", d)
	}
}

func TestDefaultsArePlaintextLocal(t *testing.T) {
	o := FromEnv(func(string) string { return "" })
	if o.Address != DefaultAddress {
		t.Fatalf("o.Address = %v, want %v (DefaultAddress); FromEnv() = %+v, secure %v",
			o.Address, DefaultAddress, o, o.Secure())
	}
	if o.Namespace != DefaultNamespace {
		t.Fatalf("o.Namespace = %v, want %v (DefaultNamespace); FromEnv() = %+v, secure %v",
			o.Namespace, DefaultNamespace, o, o.Secure())
	}
	if o.Secure() {
		t.Fatalf("o.Secure() is true; FromEnv() = %+v, secure %v", o, o.Secure())
	}
	co, err := o.ClientOptions()
	if err != nil {
		t.Fatalf("err: want nil; ClientOptions = %+v, %v: want plaintext without credentials", co, err)
	}
	if co.ConnectionOptions.TLS != nil {
		t.Fatalf("co.ConnectionOptions.TLS = %v, want nil; ClientOptions = %+v, %v: want plaintext without credentials",
			co.ConnectionOptions.TLS, co, err)
	}
	if co.Credentials != nil {
		t.Fatalf("co.Credentials = %v, want nil; ClientOptions = %+v, %v: want plaintext without credentials",
			co.Credentials, co, err)
	}
}

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	o := FromEnv(func(k string) string {
		return map[string]string{"TEMPORAL_ADDRESS": "a:1", "TEMPORAL_API_KEY": "env-key"}[k]
	})
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o.Bind(fs)
	if err := fs.Parse([]string{"--address", "b:2", "--tls=false", "--tls-server-name", "n"}); err != nil {
		t.Fatal(err)
	}
	if o.Address != "b:2" {
		t.Fatalf("o.Address = %v, want \"b:2\"; after flags: %+v secure=%v; want address b:2, the key kept, TLS forced off",
			o.Address, o, o.Secure())
	}
	if o.APIKey != "env-key" {
		t.Fatalf("o.APIKey = %v, want \"env-key\"; after flags: %+v secure=%v; want address b:2, the key kept, TLS forced off",
			o.APIKey, o, o.Secure())
	}
	if o.ServerName != "n" {
		t.Fatalf("o.ServerName = %v, want \"n\"; after flags: %+v secure=%v; want address b:2, the key kept, TLS forced off",
			o.ServerName, o, o.Secure())
	}
	if o.Secure() {
		t.Fatalf("o.Secure() is true; after flags: %+v secure=%v; want address b:2, the key kept, TLS forced off",
			o, o.Secure())
	}
	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	o = Options{}
	o.Bind(fs)
	if err := fs.Parse([]string{"--tls"}); err != nil || !o.Secure() {
		t.Fatalf("--tls: %v, secure %v", err, o.Secure())
	}
}

func TestValidateRefusesHalfAClientCertificate(t *testing.T) {
	err := Options{CertPath: "/x.pem"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "TEMPORAL_TLS_KEY") {
		t.Fatalf("Validate(cert without key) = %v", err)
	}
	if err := (Options{CAPath: "/nonexistent/ca.pem"}).Validate(); err == nil {
		t.Fatal("Validate accepted a CA file that does not exist")
	}
	if err := (Options{TLS: "maybe"}).Validate(); err == nil {
		t.Fatal("Validate accepted TEMPORAL_TLS=maybe")
	}
}

func TestAPIKeyTurnsTLSOnAndIsSentAsCredentials(t *testing.T) {
	co, err := Options{APIKey: "k"}.ClientOptions()
	if err != nil {
		t.Fatalf("err: want nil; ClientOptions(API key) = TLS %v credentials %v err %v",
			co.ConnectionOptions.TLS, co.Credentials, err)
	}
	if co.ConnectionOptions.TLS == nil {
		t.Fatalf("co.ConnectionOptions.TLS is nil; ClientOptions(API key) = TLS %v credentials %v err %v",
			co.ConnectionOptions.TLS, co.Credentials, err)
	}
	if co.Credentials == nil {
		t.Fatalf("co.Credentials is nil; ClientOptions(API key) = TLS %v credentials %v err %v",
			co.ConnectionOptions.TLS, co.Credentials, err)
	}
}
