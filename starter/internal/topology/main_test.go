package topology

import (
	"testing"

	"github.com/cutover/cutover/internal/testing/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
