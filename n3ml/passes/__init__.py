"""Graph passes: target-neutral transformations of the IR (see base.py)."""

from .base import PASSES, Pass, PassError, PassManager, get_pass_class, parse_pipeline, register_pass

register_pass("quantize", "n3ml.passes.quantize:Quantize")
register_pass("spike-gates", "n3ml.passes.gates:SpikeGates")
register_pass("fold-synaptic-reset", "n3ml.passes.synaptic:FoldSynapticReset")
register_pass("delay-before-current", "n3ml.passes.current_delay:DelayBeforeCurrent")
register_pass("fuse-synapse-filter", "n3ml.passes.synapse_filter:FuseSynapseFilter")
for _name, _cls in (("fold-batchnorm", "fold:FoldBatchNorm"), ("fold-scales", "fold:FoldScales"), ("dce", "cleanup:DeadNodeRemoval"), ("remove-identity", "cleanup:RemoveIdentity"), ("ann-to-snn", "ann_to_snn:AnnToSnn"), ("normalize", "normalize:Normalize"), ("conversion-report", "report:ConversionReport")):  # noqa: E501
    register_pass(_name, f"n3ml.passes.{_cls}")
for _name, _cls in (("merge-linear", "MergeLinear"), ("maxpool-as-or", "MaxPoolAsOr"), ("pool-after-neuron", "PoolAfterNeuron"), ("fuse-synaptic", "FuseSynaptic"),
                    ("merge-pool-dense", "MergePoolDense"), ("spikes-as-synapse", "SpikesAsSynapse"),
                    ("distribute-synapse", "DistributeSynapse"),
                    ("split-shared-synapses", "SplitSharedSynapses"), ("merge-convs", "MergeConvs")):
    register_pass(_name, f"n3ml.passes.legalize:{_cls}")

__all__ = ["PASSES", "Pass", "PassError", "PassManager", "get_pass_class", "parse_pipeline", "register_pass"]
