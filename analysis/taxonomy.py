"""One taxonomy of where time goes, for torch ops, TensorFlow ops and GPU kernels: ordered
rule tables, first match wins; the decisions behind it are in docs/taxonomy.md."""

from __future__ import annotations

import functools
import re

from profiler.traces.events import KERNEL, MEMCPY, MEMSET, RUNTIME, TraceEvent

MATMUL = "matmul"
CONVOLUTION = "convolution"
ELEMENTWISE = "elementwise"
REDUCTION = "reduction"
NORMALIZATION = "normalization"
SOFTMAX_LOSS = "softmax/loss"
OPTIMIZER = "optimizer"
DATA_MOVEMENT = "data movement"
COMMUNICATION = "communication"
OTHER = "other"
CATEGORIES = (
    MATMUL, CONVOLUTION, ELEMENTWISE, REDUCTION, NORMALIZATION, SOFTMAX_LOSS, OPTIMIZER,
    DATA_MOVEMENT, COMMUNICATION, OTHER,
)

# Framework ops, matched from the start of the op key (see _op_key): lower case is
# ignored and underscores are gone, so torch's "aten::max_pool2d_with_indices_backward",
# its autograd node "MaxPool2DWithIndicesBackward0" and TF's "MaxPoolGrad" all start
# with "maxpool". A pattern without `$` also covers the op's backward/grad variants.
OP_RULES = (
    # optimizers first: their updates are adds and multiplies
    (OPTIMIZER, r"optimizer|(amp)?foreach|(resource)?(sparse)?apply|assign(sub|add)variableop"
                r"|adam|sgd|adagrad|rmsprop|lamb|lion"),
    (COMMUNICATION, r"nccl|rccl|gloo|c10d|recordparamcomms|all(reduce|gather|toall)|reducescatter"
                    r"|collective|barrier|broadcast$|(host)?(send|recv)$"),
    (MATMUL, r"\w*(attention|attn|lstm|gru)|rnn|sdp"),  # see "Recurrent layers" above
    (SOFTMAX_LOSS, r"\w*(softmax|loss|crossentropy|xent)|kldiv"),
    (NORMALIZATION, r"(batch|layer|group|instance|rms)norm|lrn|localresponsenorm"),
    (CONVOLUTION, r"(slow|thnn|depthwise|quantized)?conv(?!ert)|im2col|col2im"),
    (MATMUL, r"\w*matmul|einsum|tensordot|(add|b|addb|baddb|scaled|int)?mm(backward|$)|addmv"
             r"|(mv|dot|vdot|outer|ger|inner|linear|bilinear)(backward|$)"),
    (REDUCTION, r"\w*pool|biasaddgrad|sum|mean|prod|argm(ax|in)|a?(max|min)(?!imum)"
                r"|norm(?!al)|linalg\w*norm|(std|var)(mean|backward|$)|logsumexp|cum(sum|prod)"
                r"|all$|any$|count"),
    (ELEMENTWISE, r"(?-i:Select)(V2)?$"),  # TF's Select is where(); aten::select is a view
    (DATA_MOVEMENT, r"copy(?!sign)|clone|contiguous|to$|tocopy|empty|resize(as)?$|set$|new"
                    r"|zero|ones|full|fill|view|reshape|unsafeview|asstrided|t(backward|$)"
                    r"|transpose|permute|expand|squeeze|unsqueeze|flatten|unflatten|select"
                    r"|slice|stridedslice|narrow|split|chunk|unbind|cat(backward|$)|concat"
                    r"|stack|pack|unpack|index|(resource)?gather|(tensor)?scatter|take"
                    r"|embedding|pad|mirrorpad|const|repeat|tile|roll|flip|reverse|detach"
                    r"|alias|lift|broadcast(to|tensors)|resolve(conj|neg)|identity|snapshot"
                    r"|readvariableop|assignvariableop|varhandleop|placeholder|tensorlist"
                    r"|tensorarray|item$|localscalardense"),
    (ELEMENTWISE, r"add|sub|rsub|mul|div|realdiv|neg|abs|relu|threshold|clamp|clip|gelu|glu"
                  r"|silu|swish|sigmoid|tanh|hard|leakyrelu|elu|selu|celu|softplus|softsign"
                  r"|mish|exp(m1|2)?(backward|$)|log|sqrt|rsqrt|square|pow|reciprocal|sign"
                  r"|floor|ceil|round|trunc|frac|fmod|remainder|erf|sin|cos|tan|atan|asin"
                  r"|acos|maximum|minimum|where|lerp|(eq|ne|lt|gt|le|ge)(backward|$)"
                  r"|notequal|less|greater|equal|logical|bitwise|isnan|isinf|isfinite"
                  r"|nantonum|maskedfill|dropout|bernoulli|rand|uniform|normal"
                  r"|truncatednormal|statelessrandom|multinomial|cast|biasadd"
                  r"|squareddifference|xdivy|xlogy|accumulate|copysign|hypot|heaviside|logit"),
)

# Name scopes that TensorFlow or Keras itself gives the ops of a composite layer,
# matched whole against each scope of a TF node path (innermost first, without Keras's
# "_1" suffix). Not "lstm" or "attention": those are layer names a user picks, and a
# model may carry them too (this project's LSTM model is named "lstm"). Nor
# "ArithmeticOptimizer", a Grappler rewrite.
SCOPE_RULES = (
    (NORMALIZATION, r"batchnorm|moments|(batch|layer|group|rms)_normalization"),
    (SOFTMAX_LOSS, r"\w*crossentropy|mean_\w+_error|huber(_loss)?|kl_divergence|log_cosh"
                   r"|\w+_loss|loss"),
    (OPTIMIZER, r"sgd|adam|adamw|adamax|nadam|rmsprop|adagrad|adadelta|adafactor|ftrl|lion"
                r"|lamb|optimizer|loss_scale_optimizer"),
    (MATMUL, r"(lstm|gru|simple_rnn)_cell|multi_head_attention"),
)

# Device kernel names (and XLA op names), searched anywhere in the name. Template
# arguments count: `FillFunctor` in a vectorized_elementwise_kernel makes it a fill.
KERNEL_RULES = (
    (MATMUL, r"^Cijk_"),  # rocBLAS/hipBLASLt Tensile GEMMs carry no op words
    (COMMUNICATION, r"nccl|rccl|all[_-]?(reduce|gather|to[_-]?all)|reduce[_-]?scatter"
                    r"|collective|sendrecv"),
    (OPTIMIZER, r"multi_tensor_apply|adam|fused_sgd|sgd_|lamb_|Apply(GradientDescent|Momentum)"),
    (MATMUL, r"fmha|flash_?attn|flash_(fwd|bwd)|fused_attn|attention|lstm|(?<![a-z])(gru|rnn)"),
    (SOFTMAX_LOSS, r"softmax|cross_?entropy|nll_?loss|mse_(loss|kernel|backward)|xent|ctc_loss"
                   r"|NormalizedProb"),
    (NORMALIZATION, r"(batch|layer|group|instance|rms)_?norm|bn_(fw|bw)|GammaBeta|RowwiseMoments"),
    # before the convolution rows, which would take these cuDNN/MIOpen kernels by library name
    (DATA_MOVEMENT, r"nchw_?(to|2)_?nhwc|nhwc_?(to|2)_?nchw|SwapDimension|ShuffleInTensor"),
    (REDUCTION, r"pool"),
    (ELEMENTWISE, r"activation_(fw|bw)"),
    (CONVOLUTION, r"conv(?!ert|ersion)|implicit_?gemm|fprop|dgrad|wgrad|cudnn|miopen"
                  r"|igemm_(fwd|bwd|wrw)|im3?d?2col|col2im|winograd|gcgemm|fft2d_[rc]2[rc]"),
    (MATMUL, r"gemm|gemv|cublas|cutlass|hipblas|rocblas|matmul"
             r"|(?<![a-z])((add|b|addb|baddb)?mm|dot)(?![a-z])"),
    # random numbers before fills: TF's FillPhiloxRandom generates, it does not fill
    (ELEMENTWISE, r"philox|random|distribution|dropout|rand_"),
    (REDUCTION, r"reduc|argmax|argmin|MeanOps|sum_functor|norm_kernel|BiasGrad"),
    (DATA_MOVEMENT, r"copy|memcpy|memset|fill|transpose|concat|CatArray|gather|scatter"
                    r"|index_?select|indexing|slice|(?<![a-z])pad(?![a-z])|split|embedding"
                    r"|__amd_rocclr"),
    (REDUCTION, r"triton_(red|per)_"),  # inductor reductions, whatever they fused
    (ELEMENTWISE, r"elementwise|element_wise|pointwise|EigenMetaKernel|relu|gelu|silu"
                  r"|sigmoid|tanh|bias|convert|cast"),
    # XLA fusion kinds when the root op named nothing above: input fusions are
    # reduction-rooted, loop fusions and single wrapped ops elementwise
    (REDUCTION, r"^input_"),
    (ELEMENTWISE, r"^loop_|^wrapped_|triton_poi_"),
)

RUNTIME_RULES = ((DATA_MOVEMENT, r"mem(cpy|set)|malloc|free|alloc|hostregister|memgetinfo"),)


def _compile(rules):
    return tuple((category, re.compile(pattern, re.IGNORECASE)) for category, pattern in rules)


_OP_RULES = _compile(OP_RULES)
_SCOPE_RULES = _compile(SCOPE_RULES)
_KERNEL_RULES = _compile(KERNEL_RULES)
_RUNTIME_RULES = _compile(RUNTIME_RULES)

AUTOGRAD_PREFIX = "autograd::engine::evaluate_function: "
TF_NODE = re.compile(r"^(?P<node>[\w.\-/>]+):(?P<type>[A-Za-z_]\w*)$")  # "scope/name:Type"
NAMESPACES = re.compile(r"^(\w+::)+")  # aten::, torch::autograd::, c10d::
# Backend and fusion variants of one op: aten::mkldnn_convolution, cudnn_batch_norm,
# native_layer_norm, TF _MklNativeFusedConv2D, _FusedMatMul, FusedBatchNormV3.
VARIANT_PREFIXES = re.compile(r"^(mkldnn|mkl|native|fused|cudnn|miopen|onednn)+", re.IGNORECASE)
KERAS_SUFFIX = re.compile(r"_\d+$")


def classify(name: str, kind: str, op: str | None = None) -> str:
    """The category (one of CATEGORIES) of one event: its `name`, its TraceEvent kind
    and the framework `op` behind it when known."""
    return _classify(name, kind, op or None)


def classify_event(event: TraceEvent) -> str:
    """`classify` for a TraceEvent: the shape the run orchestration's hook takes."""
    return _classify(event.name, event.kind, event.op or None)


@functools.lru_cache(maxsize=4096)  # a trace repeats a few hundred names many times
def _classify(name: str, kind: str, op: str | None) -> str:
    if kind in (MEMCPY, MEMSET):
        return DATA_MOVEMENT
    if kind == RUNTIME:
        return _first(_RUNTIME_RULES, "search", name) or OTHER
    if kind == KERNEL:
        return (_framework_op_category(op) or _first(_KERNEL_RULES, "search", op)
                or _first(_KERNEL_RULES, "search", name) or OTHER)
    return _framework_op_category(op, name) or OTHER


def _framework_op_category(*texts: str | None) -> str | None:
    """By a TF/Keras scope in any of the texts, else by the op type of the first that has one."""
    texts = [t for t in texts if t]
    for text in texts:
        node = TF_NODE.match(text)
        scopes = (node["node"] if node else text).split("/")[:-1]
        for scope in reversed(scopes):
            category = _first(_SCOPE_RULES, "fullmatch", KERAS_SUFFIX.sub("", scope))
            if category:
                return category
    for text in texts:
        category = _first(_OP_RULES, "match", _op_key(text))
        if category:
            return category
    return None


def _op_key(op: str) -> str:
    """The op's type in a spelling torch and TensorFlow share: no namespace, TF node path,
    underscores or backend prefix. "aten::native_batch_norm", "autograd::engine::
    evaluate_function: NativeBatchNormBackward0" and "bn/FusedBatchNormV3:_MklNativeFusedBatchNormV3"
    give "batchnorm", "BatchNormBackward0" and "BatchNormV3". Case is kept for the one
    rule that needs it (TF Select)."""
    op = op.removeprefix(AUTOGRAD_PREFIX)
    node = TF_NODE.match(op)
    if node:
        op = node["type"]
    op = NAMESPACES.sub("", op).replace("_", "")
    return VARIANT_PREFIXES.sub("", op)


def _first(rules, how: str, text: str | None) -> str | None:
    if not text:
        return None
    for category, pattern in rules:
        if getattr(pattern, how)(text):
            return category
    return None
