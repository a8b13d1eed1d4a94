# NIR (the Neuromorphic Intermediate Representation): the `nir` package that the .nir frontend and the `nir`
# target need (a test dependency), and the optional NIR readers of Sinabs, Rockpool and Spyx for
# `n3ml verify --targets nir:sinabs,...` (docs/nir.md). snnTorch and Norse come with setup-peers.
# torch==2.13.0 is named on the same pip line so that pip keeps the CPU build.
NIR_VERSION  := nir==1.0.8
NIR_STAMP    := $(VENV)/.stamp-nir-$(shell echo '$(NIR_VERSION)' | sha1sum | cut -c1-10)

.PHONY: setup-nir setup-nir-readers
setup-nir: $(NIR_STAMP)

$(NIR_STAMP): | setup
	$(BIN)/pip install -q $(NIR_VERSION) torch==2.13.0 || \
	  echo "warning: could not install $(NIR_VERSION); the NIR tests will be skipped"
	$(BIN)/python -c "import nir" && touch $@ || true

TEST_DEPS += setup-nir

# Sinabs 3.1.3 and Rockpool 3.1.0 declare nir<=1.0.4, which would downgrade nir below what nirtorch 2.6
# (Norse's and snnTorch's reader) needs; both import and read NIR 1.0.8 files, so they are installed
# without that pin (Sinabs: --no-deps, its remaining needs are already here; samna, the Speck driver, is
# not needed to read and simulate). Spyx 1.0 brings JAX (CPU) and Flax. Rockpool's reader runs CubaLIF
# graphs (nir:rockpool) and fails on every NIR LIF (docs/nir.md). Each one that fails to install is
# skipped with a warning; tests/nir skip the readers that are missing and say which.

setup-nir-readers: $(NIR_STAMP)
	$(BIN)/pip install -q --no-deps sinabs==3.1.3 pbr==7.1.3 || echo "warning: could not install sinabs; nir:sinabs is skipped"
	$(BIN)/python -c "import sinabs" 2>/dev/null || echo "warning: sinabs does not import; nir:sinabs is skipped"
	$(BIN)/pip install -q rockpool==3.1.0 torch==2.13.0 || echo "warning: could not install rockpool; nir:rockpool is skipped"
	$(BIN)/python -c "import rockpool.nn.modules.torch.nir" 2>/dev/null || echo "warning: rockpool's NIR reader does not import; nir:rockpool is skipped"
	$(BIN)/pip install -q spyx==1.0.0 torch==2.13.0 || echo "warning: could not install spyx (JAX); nir:spyx is skipped"
	$(BIN)/python -c "import spyx.nir" 2>/dev/null || echo "warning: spyx's NIR reader does not import; nir:spyx is skipped"
	-$(BIN)/pip uninstall -y -q torchvision torchaudio 2>/dev/null
