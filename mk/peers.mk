# Peer SNN libraries (snnTorch, Norse, SpikingJelly) for the frontend tests (tests/frontends).
# torch==2.13.0 is named on the same pip line so that pip keeps the CPU build; the torchvision/torchaudio
# builds they drag in do not import beside a CPU torch and are removed.
PEERS_VERSIONS := snntorch==1.0.0 norse==1.1.0 spikingjelly==2.0.0
PEERS_STAMP    := $(VENV)/.stamp-peers-$(shell echo '$(PEERS_VERSIONS)' | sha1sum | cut -c1-10)

.PHONY: setup-peers
setup-peers: $(PEERS_STAMP)

$(PEERS_STAMP): | setup
	$(BIN)/pip install -q $(PEERS_VERSIONS) torch==2.13.0 || \
	  echo "warning: could not install the peer SNN libraries; their tests will be skipped"
	-$(BIN)/pip uninstall -y -q torchvision torchaudio 2>/dev/null
	$(BIN)/python -c "import snntorch, norse, spikingjelly.activation_based.neuron" && touch $@ || true

TEST_DEPS += setup-peers
