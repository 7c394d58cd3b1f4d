package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cutover/cutover/internal/codec"
)

func mustCodec(t *testing.T, keys ...string) *codec.Codec {
	t.Helper()
	c, err := codec.ParseKeys(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func genKey(t *testing.T) string {
	t.Helper()
	k, err := codec.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const plaintext = "credentials_ref-and-mailbox ana@example.com"

func TestRoundTripHidesPlaintext(t *testing.T) {
	c := mustCodec(t, genKey(t))
	dc := codec.DataConverter(c)
	p, err := dc.ToPayload(map[string]string{"note": plaintext})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte(plaintext)) || string(p.Metadata["encoding"]) != "binary/encrypted" {
		t.Fatalf("payload not encrypted: %q", p.Metadata["encoding"])
	}
	var back map[string]string
	if err := dc.FromPayload(p, &back); err != nil {
		t.Fatalf("err: want nil; round trip = %v, %v", back, err)
	} else if back["note"] != plaintext {
		t.Fatalf("back[\"note\"] = %v, want %v (plaintext); round trip = %v, %v", back["note"], plaintext, back, err)
	}
}

func TestRotationAndUnknownKey(t *testing.T) {
	oldK, newK := genKey(t), genKey(t)
	p, err := codec.DataConverter(mustCodec(t, oldK)).ToPayload("x")
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := codec.DataConverter(mustCodec(t, newK, oldK)).FromPayload(p, &s); err != nil {
		t.Fatalf("err: want nil; decode with rotated list: %q, %v", s, err)
	} else if s != "x" {
		t.Fatalf("s: want \"x\"; decode with rotated list: %q, %v", s, err)
	}
	_, err = mustCodec(t, newK).Decode([]*commonpb.Payload{p})
	if !errors.Is(err, codec.ErrUnknownKey) {
		t.Fatalf("decode with the old key missing: %v, want ErrUnknownKey", err)
	}
	// Tampered ciphertext is refused, not silently decoded.
	bad := &commonpb.Payload{Metadata: p.Metadata, Data: append([]byte{}, p.Data...)}
	bad.Data[len(bad.Data)-1] ^= 1
	if _, err := mustCodec(t, oldK).Decode([]*commonpb.Payload{bad}); err == nil {
		t.Fatal("tampered payload decoded")
	}
}

func TestPlainPayloadsPassThrough(t *testing.T) {
	c := mustCodec(t, genKey(t))
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"hi"`)}
	out, err := c.Decode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatalf("err: want nil; plain payload: %v, %v", out, err)
	}
	if string(out[0].Data) != `"hi"` {
		t.Fatalf("string(out[0].Data) = %v, want `\"hi\"`; plain payload: %v, %v", string(out[0].Data), out, err)
	}
}

func TestParseKeysErrors(t *testing.T) {
	for _, in := range []string{"", " , ", "not base64 !!", "c2hvcnQ="} {
		if _, err := codec.ParseKeys(in); err == nil {
			t.Errorf("ParseKeys(%q) accepted", in)
		} else if in != "" && strings.Contains(err.Error(), strings.TrimSpace(in)) && len(strings.TrimSpace(in)) > 3 {
			t.Errorf("error shows key material: %v", err)
		}
	}
	c, err := codec.FromEnv(func(string) string { return "" })
	if c != nil {
		t.Fatalf("c: want nil; unset env = %v, %v; want no codec", c, err)
	}
	if err != nil {
		t.Fatalf("err: want nil; unset env = %v, %v; want no codec", c, err)
	}
}

func TestHTTPHandlerDecodesForTheUIWithToken(t *testing.T) {
	c := mustCodec(t, genKey(t))
	enc, err := c.Encode([]*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + plaintext + `"`)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(codec.Handler(c, "s3cret-token", []string{"http://127.0.0.1:8233"}))
	defer srv.Close()

	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "http://127.0.0.1:8233")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := post("wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: status %d", resp.StatusCode)
	}
	resp := post("s3cret-token")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resp.StatusCode: want http.StatusOK; decode: status %d, CORS %q",
			resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" {
		t.Fatalf("want resp.Header.Get(\"Access-Control-Allow-Origin\") == \"http://127.0.0.1:8233\"; decode: status %d, CORS %q",
			resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	var out commonpb.Payloads
	if err := protojson.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Payloads) != 1 {
		t.Fatalf("len(out.Payloads) = %v, want 1; decoded = %v", len(out.Payloads), out.Payloads)
	}
	if string(out.Payloads[0].Data) != `"`+plaintext+`"` {
		t.Fatalf("string(out.Payloads[0].Data) = %v, want %v (`\"`+plaintext+`\"`); decoded = %v",
			string(out.Payloads[0].Data), `"`+plaintext+`"`, out.Payloads)
	}
}
