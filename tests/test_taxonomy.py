"""The taxonomy of where time goes: every name in the shared GPU traces and in a real CPU
run of the tiny suite lands in a category, apart from a short literal list of names that
say nothing a person could place; the precedence decisions are spelled out as cases."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT, fixture_path

from analysis.taxonomy import (
    CATEGORIES, KERNEL_RULES, OP_RULES, RUNTIME_RULES, SCOPE_RULES, classify, classify_event,
)
from profiler.traces.events import CPU_OP, KERNEL, MEMCPY, MEMSET, RUNTIME, TraceEvent
from profiler.traces.kineto import read_kineto
from profiler.traces.xplane import read_xplane

CLASSIFIED_KINDS = (KERNEL, MEMCPY, MEMSET, CPU_OP)
KINETO_FIXTURES = (
    "a100_alexnet_train.json.gz",
    "a100_cupti_counters.json.gz",
    "cpu_only.json.gz",
    "mi250_minitoy_train.json.gz",
)
XPLANE_FIXTURES = ("gpu_jax_fused_attention.xplane.pb", "mi300x_jax_conv.xplane.pb")


def test_the_categories():
    assert CATEGORIES == (
        "matmul", "convolution", "elementwise", "reduction", "normalization", "softmax/loss",
        "optimizer", "data movement", "communication", "other",
    )


def test_every_rule_names_a_category():
    rules = OP_RULES + SCOPE_RULES + KERNEL_RULES + RUNTIME_RULES
    assert {category for category, _ in rules} == set(CATEGORIES) - {"other"}


# --- the shared GPU traces ---------------------------------------------------------------


@pytest.fixture(scope="module")
def kineto_events():
    return [e for name in KINETO_FIXTURES for e in read_kineto(fixture_path("kineto", name)).events
            if e.kind in CLASSIFIED_KINDS]


@pytest.fixture(scope="module")
def xplane_events():
    return [e for name in XPLANE_FIXTURES for e in read_xplane(fixture_path("xplane", name)).events
            if e.kind in CLASSIFIED_KINDS]


def left_in_other(events, with_op=True):
    return {e.name for e in events if classify(e.name, e.kind, e.op if with_op else None) == "other"}


def test_kineto_names_are_classified(kineto_events):
    assert len({e.name for e in kineto_events}) == 93  # 27 of them kernels
    assert {classify_event(e) for e in kineto_events} <= set(CATEGORIES)
    # dispatcher bookkeeping that yields no tensor: a type check (the fixtures' one
    # aten::result_type runs inside Optimizer.step#, which makes it the optimizer's)
    assert left_in_other(kineto_events) == {"aten::_has_compatible_shallow_copy_type"}
    optimizer_ops = {e.name for e in kineto_events if (e.op or "").startswith("Optimizer.step#")}
    assert "aten::result_type" in optimizer_ops
    # the kernels' own names suffice too, as in a trace whose ops are unknown
    assert left_in_other([e for e in kineto_events if e.kind == KERNEL], with_op=False) == set()


def test_xplane_names_are_classified(xplane_events):
    assert len({e.name for e in xplane_events}) == 25
    assert {e.kind for e in xplane_events} == {KERNEL}
    assert left_in_other(xplane_events) == set()
    assert left_in_other(xplane_events, with_op=False) == set()


def fixture_kernel(events, prefix, op):
    return next(e for e in events if e.name.startswith(prefix) and e.op == op)


@pytest.mark.parametrize(
    "prefix, op, by_op, by_name",
    [
        # cuDNN runs convolutions as GEMMs, FFTs and layout transforms
        ("ampere_gcgemm_64x64_nt", "aten::cudnn_convolution", "convolution", "convolution"),
        ("sm80_xmma_fprop_implicit_gemm_", "aten::cudnn_convolution", "convolution", "convolution"),
        ("void fft2d_r2c_32x32<float, false, 0u", "aten::cudnn_convolution", "convolution", "convolution"),
        ("void cudnn::ops::nchwToNhwcKernel", "aten::cudnn_convolution", "convolution", "data movement"),
        ("ampere_sgemm_32x32_sliced1x4_tn", "aten::addmm", "matmul", "matmul"),
        ("void epilogue::impl::globalKernel", "aten::addmm", "matmul", "matmul"),  # cuBLASLt
        # ROCm addmm copies the bias into the output before its GEMM
        ("void at::native::elementwise_kernel<128, 2, "
         "at::native::gpu_kernel_impl_nocast<at::native::direct_copy",
         "aten::addmm", "matmul", "data movement"),
        ("Cijk_Alik_Bljk_SB_Bias", "aten::addmm", "matmul", "matmul"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor", "aten::fill_",
         "data movement", "data movement"),
        ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel", "aten::_foreach_add_",
         "optimizer", "optimizer"),
        ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MeanOps",
         "aten::mean", "reduction", "reduction"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::mse_kernel_cuda", "aten::mse_loss",
         "softmax/loss", "softmax/loss"),
        ("void at::native::(anonymous namespace)::max_pool_forward_nchw", "aten::max_pool2d_with_indices",
         "reduction", "reduction"),
        ("void at::native::(anonymous namespace)::fused_dropout_kernel_vec", "aten::native_dropout",
         "elementwise", "elementwise"),
        # XLA on ROCm: MIOpen runs this convolution as im2col and a Tensile GEMM
        ("Cijk_Ailk_Bljk_BBS_BH_MT256x128x64", "cudnn-conv.1", "convolution", "matmul"),
        ("Im3d2Col.kd", "cudnn-conv.1", "convolution", "convolution"),
        ("Cijk_Alik_Bljk_BBS_BH_Bias", "custom-call.1", "matmul", "matmul"),
        ("__amd_rocclr_fillBufferAligned.kd", "te_fused_attn_backward_ffi.12", "matmul", "data movement"),
        ("void ck_tile::kentry<ck_tile::gfx950_t, 2, ck_tile::FmhaFwdKernel", "te_fused_attn_forward_ffi.10",
         "matmul", "matmul"),
        ("gemm_fusion_dot_1.kd", "gemm_fusion_dot.1", "matmul", "matmul"),
        ("input_reduce_fusion.kd", "input_reduce_fusion", "reduction", "reduction"),
        ("loop_reduce_fusion.kd", "loop_reduce_fusion", "reduction", "reduction"),
        ("input_transpose_fusion.kd", "input_transpose_fusion", "data movement", "data movement"),
        ("input_concatenate_fusion.kd", "input_concatenate_fusion", "data movement", "data movement"),
        ("wrapped_convert.kd", "wrapped_convert", "elementwise", "elementwise"),
        ("__amd_rocclr_copyBuffer.kd", None, "data movement", "data movement"),
    ],
)
def test_fixture_kernels_by_op_then_by_name(kineto_events, xplane_events, prefix, op, by_op, by_name):
    event = fixture_kernel(kineto_events + xplane_events, prefix, op)
    assert classify(event.name, KERNEL, event.op) == by_op
    assert classify(event.name, KERNEL, None) == by_name


# --- a real CPU run -----------------------------------------------------------------------
# Every distinct `name` the kernels table held after
#   xprof run --suite tiny --repeats 1 --steps 2 --warmup 1 --json
# (torch 2.13 CPU, TensorFlow 2.21 with Keras 3.15, train mode): all torch names, and of
# TF node names one of each set that differ only in "_N" suffixes. All are cpu_op rows.


def stored_op(name):
    """The `op` the readers store beside a name: the type after ':' of a TF node name
    ("scope/MatMul:_MklMatMul"), else the name itself (torch, and TF eager ops)."""
    _, colon, op_type = name.rpartition(":")
    return op_type if colon and "::" not in name and " " not in name else name


TORCH_CPU_OPS = """
AddBackward0
AddmmBackward0
CloneBackward0
ConvolutionBackward0
LogSoftmaxBackward0
MaxPool2DWithIndicesBackward0
MeanBackward1
MkldnnRnnLayerBackward0
MmBackward0
MseLossBackward0
NativeBatchNormBackward0
NativeLayerNormBackward0
NllLossBackward0
PermuteBackward0
ReluBackward0
ScaledDotProductFlashAttentionForCpuBackward0
SelectBackward0
SqueezeBackward1
StackBackward0
TBackward0
TransposeBackward0
UnsafeViewBackward0
UnsqueezeBackward0
ViewBackward0
aten::_batch_norm_impl_index
aten::_convolution
aten::_log_softmax
aten::_log_softmax_backward_data
aten::_scaled_dot_product_flash_attention_for_cpu
aten::_scaled_dot_product_flash_attention_for_cpu_backward
aten::_to_copy
aten::_unsafe_view
aten::add
aten::add_
aten::addmm
aten::as_strided
aten::as_strided_
aten::batch_norm
aten::broadcast_tensors
aten::cat
aten::clamp_min
aten::clone
aten::contiguous
aten::conv2d
aten::convolution
aten::convolution_backward
aten::copy_
aten::cross_entropy_loss
aten::cudnn_is_acceptable
aten::detach
aten::div
aten::div_
aten::empty
aten::empty_like
aten::empty_strided
aten::expand
aten::fill_
aten::layer_norm
aten::linear
aten::log_softmax
aten::lstm
aten::matmul
aten::max_pool2d
aten::max_pool2d_with_indices
aten::max_pool2d_with_indices_backward
aten::mean
aten::mkldnn_convolution
aten::mkldnn_rnn_layer
aten::mkldnn_rnn_layer_backward
aten::mm
aten::mse_loss
aten::mse_loss_backward
aten::native_batch_norm
aten::native_batch_norm_backward
aten::native_layer_norm
aten::native_layer_norm_backward
aten::nll_loss
aten::nll_loss_backward
aten::nll_loss_forward
aten::nll_loss_nd
aten::ones_like
aten::permute
aten::relu
aten::reshape
aten::resize_
aten::resolve_conj
aten::scaled_dot_product_attention
aten::select
aten::select_backward
aten::squeeze
aten::stack
aten::sum
aten::t
aten::threshold_backward
aten::to
aten::transpose
aten::unflatten
aten::unsqueeze
aten::view
aten::zero_
aten::zeros
aten::zeros_like
autograd::engine::evaluate_function: AddBackward0
autograd::engine::evaluate_function: AddmmBackward0
autograd::engine::evaluate_function: CloneBackward0
autograd::engine::evaluate_function: ConvolutionBackward0
autograd::engine::evaluate_function: LogSoftmaxBackward0
autograd::engine::evaluate_function: MaxPool2DWithIndicesBackward0
autograd::engine::evaluate_function: MeanBackward1
autograd::engine::evaluate_function: MkldnnRnnLayerBackward0
autograd::engine::evaluate_function: MmBackward0
autograd::engine::evaluate_function: MseLossBackward0
autograd::engine::evaluate_function: NativeBatchNormBackward0
autograd::engine::evaluate_function: NativeLayerNormBackward0
autograd::engine::evaluate_function: NllLossBackward0
autograd::engine::evaluate_function: PermuteBackward0
autograd::engine::evaluate_function: ReluBackward0
autograd::engine::evaluate_function: ScaledDotProductFlashAttentionForCpuBackward0
autograd::engine::evaluate_function: SelectBackward0
autograd::engine::evaluate_function: SqueezeBackward1
autograd::engine::evaluate_function: StackBackward0
autograd::engine::evaluate_function: TBackward0
autograd::engine::evaluate_function: TransposeBackward0
autograd::engine::evaluate_function: UnsafeViewBackward0
autograd::engine::evaluate_function: UnsqueezeBackward0
autograd::engine::evaluate_function: ViewBackward0
autograd::engine::evaluate_function: torch::autograd::AccumulateGrad
detach
torch::autograd::AccumulateGrad
""".splitlines()[1:]
TF_CPU_OPS = """
Add/ReadVariableOp:ReadVariableOp
Add:AddV2
AddN:AddN
AssignVariableOp:AssignVariableOp
Identity
ReadVariableOp
cnn_1/add_1/ArithmeticOptimizer/AddOpsRewrite_Add:AddV2
cnn_1/add_1/ArithmeticOptimizer/AddOpsRewrite_Leaf_1_Add:AddN
cnn_1/block_bn1_1/AssignVariableOp:AssignVariableOp
cnn_1/block_bn1_1/Cast/ReadVariableOp:ReadVariableOp
cnn_1/block_bn1_1/add:AddV2
cnn_1/block_bn1_1/batchnorm/Rsqrt:Rsqrt
cnn_1/block_bn1_1/batchnorm/add:AddV2
cnn_1/block_bn1_1/batchnorm/mul:Mul
cnn_1/block_bn1_1/batchnorm/sub:Sub
cnn_1/block_bn1_1/moments/SquaredDifference:SquaredDifference
cnn_1/block_bn1_1/moments/mean:Mean
cnn_1/block_bn1_1/moments/variance:Mean
cnn_1/block_bn1_1/mul:Mul
cnn_1/block_bn2_1/AssignVariableOp:AssignVariableOp
cnn_1/block_bn2_1/Cast/ReadVariableOp:ReadVariableOp
cnn_1/block_bn2_1/add:AddV2
cnn_1/block_bn2_1/batchnorm/Rsqrt:Rsqrt
cnn_1/block_bn2_1/batchnorm/add:AddV2
cnn_1/block_bn2_1/batchnorm/mul:Mul
cnn_1/block_bn2_1/batchnorm/sub:Sub
cnn_1/block_bn2_1/moments/SquaredDifference:SquaredDifference
cnn_1/block_bn2_1/moments/mean:Mean
cnn_1/block_bn2_1/moments/variance:Mean
cnn_1/block_bn2_1/mul:Mul
cnn_1/block_conv1_1/convolution/ReadVariableOp:ReadVariableOp
cnn_1/block_conv1_1/convolution:_MklNativeConv2D
cnn_1/block_conv2_1/convolution/ReadVariableOp:ReadVariableOp
cnn_1/block_conv2_1/convolution:_MklNativeConv2D
cnn_1/global_average_pooling2d_1/Mean:Mean
cnn_1/head_1/BiasAdd/ReadVariableOp:ReadVariableOp
cnn_1/head_1/BiasAdd:_MklNativeFusedMatMul
cnn_1/head_1/Cast/ReadVariableOp:ReadVariableOp
cnn_1/max_pooling2d_1/MaxPool2d:_MklNativeMaxPool
cnn_1/re_lu_1/Relu:Relu
cnn_1/stem_bn_1/AssignVariableOp:AssignVariableOp
cnn_1/stem_bn_1/Cast/ReadVariableOp:ReadVariableOp
cnn_1/stem_bn_1/add:AddV2
cnn_1/stem_bn_1/batchnorm/Rsqrt:Rsqrt
cnn_1/stem_bn_1/batchnorm/add:AddV2
cnn_1/stem_bn_1/batchnorm/mul:Mul
cnn_1/stem_bn_1/batchnorm/sub:Sub
cnn_1/stem_bn_1/moments/SquaredDifference:SquaredDifference
cnn_1/stem_bn_1/moments/mean:Mean
cnn_1/stem_bn_1/moments/variance:Mean
cnn_1/stem_bn_1/mul:Mul
cnn_1/stem_conv_1/convolution/ReadVariableOp:ReadVariableOp
cnn_1/stem_conv_1/convolution:_MklNativeConv2D
conv2d_1/conv_1/BiasAdd:_MklNativeFusedConv2D
conv2d_1/conv_1/Reshape/ReadVariableOp:ReadVariableOp
conv2d_1/conv_1/convolution/ReadVariableOp:ReadVariableOp
gradient_tape/cnn_1/block_bn1_1/batchnorm/RsqrtGrad:RsqrtGrad
gradient_tape/cnn_1/block_bn1_1/batchnorm/add_1/Sum:Sum
gradient_tape/cnn_1/block_bn1_1/batchnorm/mul/Mul:Mul
gradient_tape/cnn_1/block_bn1_1/batchnorm/mul_1/Sum:Sum
gradient_tape/cnn_1/block_bn1_1/batchnorm/sub/Neg:Neg
gradient_tape/cnn_1/block_bn1_1/moments/Mul:Mul
gradient_tape/cnn_1/block_bn1_1/moments/Tile:Tile
gradient_tape/cnn_1/block_bn1_1/moments/mul_1:Mul
gradient_tape/cnn_1/block_bn1_1/moments/sub:Sub
gradient_tape/cnn_1/block_bn1_1/moments/truediv:Mul
gradient_tape/cnn_1/block_bn2_1/batchnorm/RsqrtGrad:RsqrtGrad
gradient_tape/cnn_1/block_bn2_1/batchnorm/add_1/Sum:Sum
gradient_tape/cnn_1/block_bn2_1/batchnorm/mul/Mul:Mul
gradient_tape/cnn_1/block_bn2_1/batchnorm/mul_1/Sum:Sum
gradient_tape/cnn_1/block_bn2_1/batchnorm/sub/Neg:Neg
gradient_tape/cnn_1/block_bn2_1/moments/Mul:Mul
gradient_tape/cnn_1/block_bn2_1/moments/Tile:Tile
gradient_tape/cnn_1/block_bn2_1/moments/mul_1:Mul
gradient_tape/cnn_1/block_bn2_1/moments/sub:Sub
gradient_tape/cnn_1/block_bn2_1/moments/truediv:Mul
gradient_tape/cnn_1/block_conv1_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter
gradient_tape/cnn_1/block_conv1_1/convolution/Conv2DBackpropInput:_MklNativeConv2DBackpropInput
gradient_tape/cnn_1/block_conv2_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter
gradient_tape/cnn_1/block_conv2_1/convolution/Conv2DBackpropInput:_MklNativeConv2DBackpropInput
gradient_tape/cnn_1/global_average_pooling2d_1/Tile:Tile
gradient_tape/cnn_1/global_average_pooling2d_1/truediv:Mul
gradient_tape/cnn_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/cnn_1/head_1/MatMul/MatMul:_MklMatMul
gradient_tape/cnn_1/max_pooling2d_1/MaxPool2d/MaxPoolGrad:_MklNativeMaxPoolGrad
gradient_tape/cnn_1/re_lu_1/ReluGrad:ReluGrad
gradient_tape/cnn_1/stem_bn_1/batchnorm/RsqrtGrad:RsqrtGrad
gradient_tape/cnn_1/stem_bn_1/batchnorm/add_1/Sum:Sum
gradient_tape/cnn_1/stem_bn_1/batchnorm/mul/Mul:Mul
gradient_tape/cnn_1/stem_bn_1/batchnorm/mul_1/Sum:Sum
gradient_tape/cnn_1/stem_bn_1/batchnorm/sub/Neg:Neg
gradient_tape/cnn_1/stem_bn_1/moments/Mul:Mul
gradient_tape/cnn_1/stem_bn_1/moments/Tile:Tile
gradient_tape/cnn_1/stem_bn_1/moments/mul_1:Mul
gradient_tape/cnn_1/stem_bn_1/moments/sub:Sub
gradient_tape/cnn_1/stem_bn_1/moments/truediv:Mul
gradient_tape/cnn_1/stem_conv_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter
gradient_tape/conv2d_1/conv_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilterWithBias
gradient_tape/linear_1/linear_1/MatMul/MatMul:_MklMatMul
gradient_tape/lstm_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/lstm_1/head_1/MatMul/MatMul:_MklMatMul
gradient_tape/lstm_1/lstm_1/TensorArrayV2Stack/TensorListFromTensor:TensorListFromTensor
gradient_tape/lstm_1/lstm_1/strided_slice_2/StridedSliceGrad:StridedSliceGrad
gradient_tape/lstm_1/lstm_1/while/VariableShape:VariableShape
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/add:AddV2
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/AddN:AddN
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/TensorArrayV2Write/TensorListSetItem_grad/TensorListGetItem:TensorListGetItem
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/TensorArrayV2Write/TensorListSetItem_grad/TensorListSetItem:TensorListSetItem
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/BiasAdd_grad/BiasAddGrad:BiasAddGrad
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/MatMul_1_grad/MatMul/TensorListPopBack:TensorListPopBack
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/MatMul_1_grad/MatMul:_MklMatMul
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/Sigmoid_1_grad/SigmoidGrad:SigmoidGrad
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/Tanh_1_grad/TanhGrad:TanhGrad
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/mul_1_grad/Mul/TensorListPopBack:TensorListPopBack
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/mul_1_grad/Mul:Mul
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/body/_94/gradient_tape/lstm_1/lstm_1/while/gradients/lstm_1/lstm_1/while/lstm_cell_1/split_grad/concat:ConcatV2
gradient_tape/lstm_1/lstm_1/while/lstm_1/lstm_1/while_grad/cond/_93/gradient_tape/lstm_1/lstm_1/while/Less:Less
gradient_tape/lstm_1/lstm_1/while/zeros:Fill
gradient_tape/matmul_1/matmul_1/MatMul/MatMul:_MklMatMul
gradient_tape/mean_squared_error/Mul_1:Mul
gradient_tape/mean_squared_error/sub/Neg:Neg
gradient_tape/mlp_1/dense0_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/mlp_1/dense0_1/MatMul/MatMul:_MklMatMul
gradient_tape/mlp_1/dense0_1/ReluGrad:ReluGrad
gradient_tape/mlp_1/dense1_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/mlp_1/dense1_1/MatMul/MatMul:_MklMatMul
gradient_tape/mlp_1/dense1_1/ReluGrad:ReluGrad
gradient_tape/mlp_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/mlp_1/head_1/MatMul/MatMul:_MklMatMul
gradient_tape/sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits/mul:Mul
gradient_tape/transformer_1/attention_1/Mul_2:Mul
gradient_tape/transformer_1/attention_1/Sum:Sum
gradient_tape/transformer_1/attention_1/attention_output_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/transformer_1/attention_1/attention_output_1/MatMul/MatMul:_MklBatchMatMulV2
gradient_tape/transformer_1/attention_1/attention_output_1/MatMul/Sum_1:Sum
gradient_tape/transformer_1/attention_1/einsum/Einsum:_MklEinsum
gradient_tape/transformer_1/attention_1/key_1/Add/Sum:Sum
gradient_tape/transformer_1/attention_1/key_1/MatMul/MatMul_1:_MklBatchMatMulV2
gradient_tape/transformer_1/attention_1/key_1/MatMul/Sum_1:Sum
gradient_tape/transformer_1/attention_1/mul:Mul
gradient_tape/transformer_1/attention_1/query_1/Add/Sum:Sum
gradient_tape/transformer_1/attention_1/query_1/MatMul/MatMul_1:_MklBatchMatMulV2
gradient_tape/transformer_1/attention_1/query_1/MatMul/Sum_1:Sum
gradient_tape/transformer_1/attention_1/sub:Sub
gradient_tape/transformer_1/attention_1/value_1/Add/Sum:Sum
gradient_tape/transformer_1/attention_1/value_1/MatMul/MatMul_1:_MklBatchMatMulV2
gradient_tape/transformer_1/attention_1/value_1/MatMul/Sum_1:Sum
gradient_tape/transformer_1/ff1_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/transformer_1/ff1_1/ReluGrad:ReluGrad
gradient_tape/transformer_1/ff1_1/Tensordot/MatMul/MatMul:_MklMatMul
gradient_tape/transformer_1/ff2_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/transformer_1/ff2_1/Tensordot/MatMul/MatMul:_MklMatMul
gradient_tape/transformer_1/global_average_pooling1d_1/Tile:Tile
gradient_tape/transformer_1/global_average_pooling1d_1/truediv:Mul
gradient_tape/transformer_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad
gradient_tape/transformer_1/head_1/MatMul/MatMul:_MklMatMul
gradient_tape/transformer_1/norm1_1/Neg:Neg
gradient_tape/transformer_1/norm1_1/RsqrtGrad:RsqrtGrad
gradient_tape/transformer_1/norm1_1/add_1/Sum:Sum
gradient_tape/transformer_1/norm1_1/moments/Mul:Mul
gradient_tape/transformer_1/norm1_1/moments/Tile:Tile
gradient_tape/transformer_1/norm1_1/moments/mul_1:Mul
gradient_tape/transformer_1/norm1_1/moments/sub:Sub
gradient_tape/transformer_1/norm1_1/moments/truediv:Mul
gradient_tape/transformer_1/norm1_1/mul/Mul:Mul
gradient_tape/transformer_1/norm1_1/mul/Sum:Sum
gradient_tape/transformer_1/norm2_1/Neg:Neg
gradient_tape/transformer_1/norm2_1/RsqrtGrad:RsqrtGrad
gradient_tape/transformer_1/norm2_1/add_1/Sum:Sum
gradient_tape/transformer_1/norm2_1/moments/Mul:Mul
gradient_tape/transformer_1/norm2_1/moments/Tile:Tile
gradient_tape/transformer_1/norm2_1/moments/mul_1:Mul
gradient_tape/transformer_1/norm2_1/moments/sub:Sub
gradient_tape/transformer_1/norm2_1/moments/truediv:Mul
gradient_tape/transformer_1/norm2_1/mul/Mul:Mul
gradient_tape/transformer_1/norm2_1/mul/Sum:Sum
linear_1/linear_1/Cast/ReadVariableOp:ReadVariableOp
linear_1/linear_1/MatMul:_MklMatMul
lstm_1/head_1/BiasAdd/ReadVariableOp:ReadVariableOp
lstm_1/head_1/BiasAdd:_MklNativeFusedMatMul
lstm_1/head_1/Cast/ReadVariableOp:ReadVariableOp
lstm_1/lstm_1/TensorArrayUnstack/TensorListFromTensor:TensorListFromTensor
lstm_1/lstm_1/TensorArrayV2Stack/TensorListStack:TensorListStack
lstm_1/lstm_1/lstm_cell_1/BiasAdd/ReadVariableOp:ReadVariableOp
lstm_1/lstm_1/lstm_cell_1/Cast/ReadVariableOp:ReadVariableOp
lstm_1/lstm_1/strided_slice_2:StridedSlice
lstm_1/lstm_1/transpose:_MklTranspose
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/TensorArrayV2Read/TensorListGetItem:TensorListGetItem
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/TensorArrayV2Write/TensorListSetItem:TensorListSetItem
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/TensorListPushBack:TensorListPushBack
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/add:AddV2
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/Add:AddV2
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/BiasAdd/ReadVariableOp:ReadVariableOp
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/BiasAdd:BiasAdd
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/Cast/ReadVariableOp:ReadVariableOp
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/MatMul:_MklMatMul
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/Sigmoid:Sigmoid
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/Tanh:Tanh
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/add_1:AddV2
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/mul:Mul
lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/split:Split
lstm_1/lstm_1/while/cond/_0/lstm_1/lstm_1/while/Less:Less
lstm_1/lstm_1/while/cond/_0/lstm_1/lstm_1/while/LogicalAnd:LogicalAnd
matmul_1/matmul_1/Cast/ReadVariableOp:ReadVariableOp
matmul_1/matmul_1/MatMul:_MklMatMul
mean_squared_error/Mean:Mean
mean_squared_error/Square:Square
mean_squared_error/Sum:Sum
mean_squared_error/div_no_nan:DivNoNan
mean_squared_error/sub:Sub
mlp_1/dense0_1/BiasAdd/ReadVariableOp:ReadVariableOp
mlp_1/dense0_1/Cast/ReadVariableOp:ReadVariableOp
mlp_1/dense0_1/Relu:_MklNativeFusedMatMul
mlp_1/dense1_1/BiasAdd/ReadVariableOp:ReadVariableOp
mlp_1/dense1_1/Cast/ReadVariableOp:ReadVariableOp
mlp_1/dense1_1/Relu:_MklNativeFusedMatMul
mlp_1/head_1/BiasAdd/ReadVariableOp:ReadVariableOp
mlp_1/head_1/BiasAdd:_MklNativeFusedMatMul
mlp_1/head_1/Cast/ReadVariableOp:ReadVariableOp
sgd/AssignSubVariableOp:AssignSubVariableOp
sgd/Cast/ReadVariableOp:ReadVariableOp
sgd/Mul:Mul
sparse_categorical_crossentropy/Cast:Cast
sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits/SparseSoftmaxCrossEntropyWithLogits:SparseSoftmaxCrossEntropyWithLogits
sparse_categorical_crossentropy/Sum:Sum
sparse_categorical_crossentropy/div_no_nan:DivNoNan
transformer_1/Add:AddV2
transformer_1/attention_1/Mul:Mul
transformer_1/attention_1/Softmax:_MklSoftmax
transformer_1/attention_1/attention_output_1/BiasAdd/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/attention_output_1/BiasAdd:BiasAdd
transformer_1/attention_1/attention_output_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/attention_output_1/MatMul:_MklBatchMatMulV2
transformer_1/attention_1/einsum/Einsum:_MklEinsum
transformer_1/attention_1/key_1/Add/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/key_1/Add:AddV2
transformer_1/attention_1/key_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/key_1/MatMul:_MklBatchMatMulV2
transformer_1/attention_1/query_1/Add/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/query_1/Add:AddV2
transformer_1/attention_1/query_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/query_1/MatMul:_MklBatchMatMulV2
transformer_1/attention_1/value_1/Add/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/value_1/Add:AddV2
transformer_1/attention_1/value_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/attention_1/value_1/MatMul:_MklBatchMatMulV2
transformer_1/ff1_1/BiasAdd/ReadVariableOp:ReadVariableOp
transformer_1/ff1_1/BiasAdd:BiasAdd
transformer_1/ff1_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/ff1_1/Relu:Relu
transformer_1/ff1_1/Tensordot/MatMul:_MklMatMul
transformer_1/ff2_1/BiasAdd/ReadVariableOp:ReadVariableOp
transformer_1/ff2_1/BiasAdd:BiasAdd
transformer_1/ff2_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/ff2_1/Tensordot/MatMul:_MklMatMul
transformer_1/global_average_pooling1d_1/Mean:Mean
transformer_1/head_1/BiasAdd/ReadVariableOp:ReadVariableOp
transformer_1/head_1/BiasAdd:_MklNativeFusedMatMul
transformer_1/head_1/Cast/ReadVariableOp:ReadVariableOp
transformer_1/norm1_1/ArithmeticOptimizer/AddOpsRewrite_Leaf_1_add_2:AddN
transformer_1/norm1_1/ArithmeticOptimizer/AddOpsRewrite_add_2:AddV2
transformer_1/norm1_1/Neg:Neg
transformer_1/norm1_1/Reshape/ReadVariableOp:ReadVariableOp
transformer_1/norm1_1/Rsqrt:Rsqrt
transformer_1/norm1_1/add:AddV2
transformer_1/norm1_1/moments/SquaredDifference:SquaredDifference
transformer_1/norm1_1/moments/mean:Mean
transformer_1/norm1_1/moments/variance:Mean
transformer_1/norm1_1/mul:Mul
transformer_1/norm2_1/ArithmeticOptimizer/AddOpsRewrite_Leaf_1_add_2:AddN
transformer_1/norm2_1/ArithmeticOptimizer/AddOpsRewrite_add_2:AddV2
transformer_1/norm2_1/Neg:Neg
transformer_1/norm2_1/Reshape/ReadVariableOp:ReadVariableOp
transformer_1/norm2_1/Rsqrt:Rsqrt
transformer_1/norm2_1/add:AddV2
transformer_1/norm2_1/moments/SquaredDifference:SquaredDifference
transformer_1/norm2_1/moments/mean:Mean
transformer_1/norm2_1/moments/variance:Mean
transformer_1/norm2_1/mul:Mul
""".splitlines()[1:]


CPU_RUN_NAMES = TORCH_CPU_OPS + TF_CPU_OPS
# Bookkeeping that yields no tensor: a backend query (asked by torch's convolution and
# RNN paths alike) and a shape query in TF's LSTM gradient loop.
CPU_RUN_OTHER = {
    "aten::cudnn_is_acceptable",
    "gradient_tape/lstm_1/lstm_1/while/VariableShape:VariableShape",
}


def test_cpu_run_names_are_classified():
    assert (len(TORCH_CPU_OPS), len(TF_CPU_OPS)) == (129, 279)
    left = {name for name in CPU_RUN_NAMES if classify(name, CPU_OP, stored_op(name)) == "other"}
    assert left == CPU_RUN_OTHER


@pytest.mark.parametrize(
    "name, category",
    [
        ("aten::addmm", "matmul"),
        ("aten::linear", "matmul"),
        ("autograd::engine::evaluate_function: AddmmBackward0", "matmul"),
        ("MmBackward0", "matmul"),
        ("aten::lstm", "matmul"),
        ("aten::mkldnn_rnn_layer_backward", "matmul"),
        ("aten::scaled_dot_product_attention", "matmul"),
        ("aten::convolution_backward", "convolution"),
        ("aten::mkldnn_convolution", "convolution"),
        ("ConvolutionBackward0", "convolution"),
        ("aten::native_batch_norm", "normalization"),
        ("NativeLayerNormBackward0", "normalization"),
        ("aten::threshold_backward", "elementwise"),
        ("aten::add_", "elementwise"),
        ("torch::autograd::AccumulateGrad", "elementwise"),
        ("aten::sum", "reduction"),
        ("aten::max_pool2d_with_indices", "reduction"),
        ("MaxPool2DWithIndicesBackward0", "reduction"),
        ("aten::cross_entropy_loss", "softmax/loss"),
        ("aten::_log_softmax_backward_data", "softmax/loss"),
        ("aten::nll_loss_forward", "softmax/loss"),
        ("MseLossBackward0", "softmax/loss"),
        ("aten::copy_", "data movement"),
        ("aten::to", "data movement"),
        ("aten::empty", "data movement"),
        ("aten::zero_", "data movement"),
        ("aten::t", "data movement"),
        ("TBackward0", "data movement"),
        ("aten::cat", "data movement"),
        # TensorFlow: the op type decides, or a scope TensorFlow or Keras named itself
        ("linear_1/linear_1/MatMul:_MklMatMul", "matmul"),
        ("transformer_1/attention_1/einsum/Einsum:_MklEinsum", "matmul"),
        ("cnn_1/head_1/BiasAdd:_MklNativeFusedMatMul", "matmul"),
        ("conv2d_1/conv_1/BiasAdd:_MklNativeFusedConv2D", "convolution"),
        ("gradient_tape/cnn_1/block_conv1_1/convolution/Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter",
         "convolution"),
        ("gradient_tape/cnn_1/block_conv1_1/convolution/Conv2DBackpropInput:_MklNativeConv2DBackpropInput",
         "convolution"),
        ("sparse_categorical_crossentropy/SparseSoftmaxCrossEntropyWithLogits/"
         "SparseSoftmaxCrossEntropyWithLogits:SparseSoftmaxCrossEntropyWithLogits", "softmax/loss"),
        ("mean_squared_error/Mean:Mean", "softmax/loss"),
        ("transformer_1/attention_1/Softmax:_MklSoftmax", "softmax/loss"),
        ("sgd/AssignSubVariableOp:AssignSubVariableOp", "optimizer"),
        ("sgd/Mul:Mul", "optimizer"),
        ("cnn_1/block_bn1_1/moments/mean:Mean", "normalization"),
        ("cnn_1/stem_bn_1/batchnorm/mul:Mul", "normalization"),
        ("cnn_1/stem_bn_1/mul:Mul", "elementwise"),  # moving average, under a user-named scope
        ("cnn_1/global_average_pooling2d_1/Mean:Mean", "reduction"),
        ("gradient_tape/mlp_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad", "reduction"),
        # the model is named "lstm": not a scope that makes everything in it recurrent
        ("gradient_tape/lstm_1/head_1/BiasAdd/BiasAddGrad:BiasAddGrad", "reduction"),
        ("lstm_1/lstm_1/while/body/_1/lstm_1/lstm_1/while/lstm_cell_1/Sigmoid:Sigmoid", "matmul"),
        ("lstm_1/lstm_1/transpose:_MklTranspose", "data movement"),
        ("cnn_1/add_1/ArithmeticOptimizer/AddOpsRewrite_Add:AddV2", "elementwise"),  # Grappler
        ("cnn_1/max_pooling2d_1/MaxPool2d:_MklNativeMaxPool", "reduction"),
        ("cnn_1/re_lu_1/Relu:Relu", "elementwise"),
        ("sparse_categorical_crossentropy/Cast:Cast", "softmax/loss"),
        ("ReadVariableOp", "data movement"),
        ("Identity", "data movement"),
    ],
)
def test_cpu_run_spot_checks(name, category):
    assert name in CPU_RUN_NAMES
    assert classify(name, CPU_OP, stored_op(name)) == category


# --- names the traces above do not hold ------------------------------------------------


@pytest.mark.parametrize(
    "op, category",
    [
        ("aten::bmm", "matmul"),
        ("aten::matmul", "matmul"),
        ("aten::_convolution", "convolution"),
        ("aten::cudnn_convolution", "convolution"),
        ("aten::layer_norm", "normalization"),
        ("aten::_foreach_add_", "optimizer"),
        ("aten::_fused_adam_", "optimizer"),
        ("Optimizer.step#SGD.step", "optimizer"),
        ("aten::_softmax", "softmax/loss"),
        ("aten::mse_loss", "softmax/loss"),
        ("aten::normal_", "elementwise"),
        ("aten::maximum", "elementwise"),
        ("aten::max", "reduction"),
        ("aten::select", "data movement"),
        ("c10d::allreduce_", "communication"),
        ("MatMul", "matmul"),
        ("BatchMatMulV2", "matmul"),
        ("_MklNativeFusedMatMul", "matmul"),
        ("Conv2D", "convolution"),
        ("_FusedConv2D", "convolution"),
        ("DepthwiseConv2dNative", "convolution"),
        ("FusedBatchNormV3", "normalization"),
        ("_MklNativeFusedBatchNormV3", "normalization"),
        ("FusedBatchNormGradV3", "normalization"),
        ("_MklLayerNorm", "normalization"),
        ("_MklNativeRelu", "elementwise"),
        ("ReluGrad", "elementwise"),
        ("BiasAdd", "elementwise"),
        ("SelectV2", "elementwise"),
        ("Sum", "reduction"),
        ("MaxPoolGrad", "reduction"),
        ("BiasAddGrad", "reduction"),
        ("Softmax", "softmax/loss"),
        ("ResourceApplyGradientDescent", "optimizer"),
        ("ResourceApplyAdam", "optimizer"),
        ("AssignAddVariableOp", "optimizer"),
        ("Transpose", "data movement"),
        ("Reshape", "data movement"),
        ("ConcatV2", "data movement"),
        ("GatherV2", "data movement"),
        ("_Send", "communication"),
        ("_Recv", "communication"),
        ("NcclAllReduce", "communication"),
        ("CollectiveReduceV2", "communication"),
    ],
)
def test_framework_ops(op, category):
    assert classify(op, CPU_OP, op) == category


@pytest.mark.parametrize(
    "kernel, category",
    [
        ("volta_sgemm_128x64_nn", "matmul"),
        ("ampere_fp16_s16816gemm_fp16_128x128_ldg8_f2f_stages_32x5_nn", "matmul"),
        ("void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>(Params)", "matmul"),
        ("void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false>", "matmul"),
        ("triton_tem_fused_mm_0", "matmul"),
        ("void flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>, true>(Flash_fwd_params)", "matmul"),
        # a convolution run as a GEMM is a convolution: these rows precede `gemm`
        ("void implicit_convolve_sgemm<float, float, 128, 5, 5, 3, 3, 3, 1, false, false, true>", "convolution"),
        ("void cudnn::detail::wgrad_alg0_engine<float, 128, 6, 7, 3, 3, 5, false, 512>", "convolution"),
        ("void cudnn::cnn::dgrad2d_grouped_direct_kernel<float, int, float, float, false>", "convolution"),
        ("sm86_xmma_wgrad_implicit_gemm_indexed_wo_smem_tf32f32_tf32f32_f32_nhwckrsc_nhwc", "convolution"),
        ("miopenSp3AsmConv_v21_1_3_gfx9_fp32_stride1", "convolution"),
        ("naive_conv_fwd_nchw_float_double_float", "convolution"),
        ("igemm_fwd_gtcx_nchw_fp32_bx0_ex1_bt128x128x16", "convolution"),
        ("void cudnn::detail::pooling_fw_4d_kernel<float, float, cudnn::detail::maxpooling_func>", "reduction"),
        ("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, 512, true, 1>", "normalization"),
        ("void cudnn::bn_bw_1C11_kernel_new<float, float, float2, 512, true, 1>", "normalization"),
        ("void at::native::batch_norm_collect_statistics_kernel<at::native::InvStd, float, float, float, int>",
         "normalization"),
        ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>", "normalization"),
        ("void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel_32x32<float, float>",
         "normalization"),
        ("MIOpenBatchNormFwdTrainSpatial", "normalization"),
        ("void (anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
         "(anonymous namespace)::LogSoftMaxForwardEpilogue>", "softmax/loss"),
        # a loss before a reduction, a collective before a reduction
        ("void nll_loss_forward_reduce_cuda_kernel_2d<float, float, long>", "softmax/loss"),
        ("ncclKernel_AllReduce_RING_LL_Sum_float(ncclWorkElem)", "communication"),
        ("ncclDevKernel_ReduceScatter_Sum_f32_RING_LL", "communication"),
        ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MaxOps<float>>>",
         "reduction"),
        ("void Eigen::internal::EigenMetaKernel<Eigen::TensorEvaluator<Eigen::TensorAssignOp<"
         "Eigen::TensorMap<Eigen::Tensor<float, 1, 1, long>, 16>, Eigen::TensorCwiseBinaryOp<"
         "Eigen::internal::scalar_product_op<float, float>>>>, long>", "elementwise"),
        ("void tensorflow::functor::FillPhiloxRandomKernelLaunch<tensorflow::random::UniformDistribution>",
         "elementwise"),
        ("void tensorflow::functor::SwapDimension1And2InTensor3UsingTiles<unsigned int, 256, 32, 32, false>",
         "data movement"),
        ("void at::native::(anonymous namespace)::CatArrayBatchedCopy<float, unsigned int, 4, 64, 64>",
         "data movement"),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl>", "elementwise"),
        ("triton_poi_fused_add_relu_0", "elementwise"),
        ("triton_red_fused_sum_1", "reduction"),
        ("triton_per_fused__softmax_0", "softmax/loss"),
        ("loop_add_fusion", "elementwise"),
        ("loop_dynamic_update_slice_fusion", "data movement"),
        ("__amd_rocclr_fillBufferAligned", "data movement"),
    ],
)
def test_kernel_names(kernel, category):
    assert classify(kernel, KERNEL) == category


@pytest.mark.parametrize(
    "name, category",
    [
        # Keras's own default layer names, when a user keeps them
        ("model/multi_head_attention/Softmax:Softmax", "matmul"),
        ("model/batch_normalization/moments/mean:Mean", "normalization"),
        ("model/layer_normalization/mul:Mul", "normalization"),
        ("gradient_tape/model/gru/while/body/_1/gru_cell/Sigmoid:Sigmoid", "matmul"),
        ("adam/Sqrt:Sqrt", "optimizer"),
        ("binary_crossentropy/Mean:Mean", "softmax/loss"),
        # user names carry no meaning, however suggestive
        ("model/attention/Softmax:Softmax", "softmax/loss"),
        ("lstm/dense/MatMul:MatMul", "matmul"),
        ("lstm/dense/Relu:Relu", "elementwise"),
    ],
)
def test_tensorflow_scopes(name, category):
    assert classify(name, CPU_OP, stored_op(name)) == category
    # a GPU kernel whose tf_op is that node: the op decides, the kernel name would not
    assert classify("void Eigen::internal::EigenMetaKernel<float>", KERNEL, name) == category


def test_unknown_names_are_other():
    assert classify("fusion.123", KERNEL) == "other"  # which ops XLA fused, it does not say
    assert classify("my_custom_kernel<float>", KERNEL) == "other"
    assert classify("MyCustomOp", CPU_OP, "MyCustomOp") == "other"
    assert classify("", CPU_OP) == "other"
    # an unknown op does not hide what the kernel name says
    assert classify("volta_sgemm_128x64_nn", KERNEL, "CompiledFunction") == "matmul"


@pytest.mark.parametrize("name", ["Memcpy HtoD (Pageable -> Device)", "Memcpy DtoD (Device -> Device)",
                                  "Memset (Device)", "anything at all"])
def test_copies_and_fills_are_data_movement_whatever_their_name(name):
    assert classify(name, MEMCPY, "aten::addmm") == "data movement"
    assert classify(name, MEMSET) == "data movement"


@pytest.mark.parametrize(
    "call, category",
    [
        ("cudaMemcpyAsync", "data movement"),
        ("hipMemcpyWithStream", "data movement"),
        ("hipMemsetAsync", "data movement"),
        ("cudaMalloc", "data movement"),
        ("cudaFree", "data movement"),
        ("cudaLaunchKernel", "other"),
        ("hipModuleLaunchKernel", "other"),
        ("cudaStreamSynchronize", "other"),
        ("cudaEventRecord", "other"),
    ],
)
def test_runtime_calls_by_their_own_name(call, category):
    # launch overhead is not the launched op's time: the op does not count here
    assert classify(call, RUNTIME, "aten::addmm") == category


def test_classify_event_reads_name_kind_and_op():
    event = TraceEvent("ampere_gcgemm_64x64_nt", KERNEL, 0, 10, "cuda:0", "7", op="aten::cudnn_convolution")
    assert classify_event(event) == "convolution"


def test_importing_the_taxonomy_loads_no_framework():
    code = ("import sys, analysis.taxonomy; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tensorflow', 'pynvml'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
