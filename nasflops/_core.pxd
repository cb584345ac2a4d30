# cython: language_level=3
"""C declarations of the layer record and the codes the core speaks.

``Layer`` is the single source of truth for the record layout: the numpy
dtype ``nasflops.LAYER_DTYPE`` is taken from it (see ``_core.pyx``), so the
two cannot drift.  Every field is a fixed-size integer so that a batch of
millions of layers is one flat, memory-mappable buffer.
"""
from libc.stdint cimport int8_t, uint8_t, int16_t, uint16_t, int32_t, int64_t

# Maximum number of inputs one record can name (fields input0..input3).
# Wider joins (DenseNet's concatenation of 25 tensors) chain records:
# concat(concat(a, b, c, d), e).
cdef enum:
    MAX_INPUTS = 4

cdef packed struct Layer:
    int16_t op            # OpCode
    int8_t act            # ActKind, read only by OP_ACT
    uint8_t call          # CallKind: how torch code invokes the op (hook-based
                          # tools see a module, a function and an operator differently)
    uint16_t flags        # FLAG_* bits (bias, affine, ceil_mode, ...)
    int16_t kv_heads      # attention: key/value heads (GQA/MQA; 0 = as many as heads)
    int32_t out_channels  # conv/linear: output channels or features;
                          # input: C; slice: number of channels (tokens) kept;
                          # mha: embedding dimension; embedding: embedding dimension;
                          # expert_linear: output features of each expert
    int32_t groups        # conv: groups; channel shuffle: groups; attention, mha, rope: heads;
                          # view_as: groups (stacks) of the result; slice: step (0: 1);
                          # expert_linear: experts
    int32_t start         # slice: first channel (or token) kept
    int32_t size_h        # input: height; adaptive avg pool: output height;
                          # prepend: tokens prepended; view_as: height (rows);
                          # kv_cache: tokens already cached (past); expert_linear: experts
                          # each token is routed to (top-k)
    int32_t size_w        # input: width; adaptive avg pool: output width;
                          # view_as: width (columns)
    int16_t kernel_h      # conv/pool kernel
    int16_t kernel_w
    int16_t stride_h      # conv/pool stride (>= 1)
    int16_t stride_w
    int16_t pad_h         # conv/pool zero padding on each side
    int16_t pad_w
    int16_t dilation_h    # conv/max-pool dilation (>= 1)
    int16_t dilation_w
    int32_t input0        # indices of the layers feeding this one, within
    int32_t input1        # the same architecture, in slot order; -1 marks an
    int32_t input2        # unused slot, and used slots come first
    int32_t input3
    int32_t extra         # per-op integer: concat: the axis joined (0 channels, 1 height,
                          # 2 width); mean: the axes reduced (bits 1 C, 2 H, 4 W);
                          # param_add: learned values added (0: a constant);
                          # embedding: vocabulary size (rows of the table); 0 otherwise

# Operation codes.  Append only: codes are stored in Parquet files.
cdef enum OpCode:
    OP_INPUT = 0
    OP_CONV2D = 1
    OP_LINEAR = 2
    OP_BATCHNORM = 3
    OP_LAYERNORM = 4
    OP_ACT = 5
    OP_MAXPOOL = 6
    OP_AVGPOOL = 7
    OP_ADAPTIVE_AVGPOOL = 8
    OP_ADD = 9
    OP_MUL = 10
    OP_CONCAT = 11
    OP_FLATTEN = 12
    OP_IDENTITY = 13
    OP_ZERO = 14
    OP_CHANNEL_SHUFFLE = 15
    OP_DROPOUT = 16
    OP_SOFTMAX = 17
    OP_SLICE = 18
    OP_SCALE = 19
    OP_TOKENS = 20        # C x H x W image -> tokens (channels last), a view
    OP_TO_IMAGE = 21      # tokens -> C x H x W image, a view
    OP_PREPEND = 22       # prepend learned tokens (class/distillation tokens)
    OP_PARAM_ADD = 23     # add a learned (or constant) tensor: position embeddings, biases
    OP_VIEW_AS = 24       # reshape/permute to a given shape and layout (a view or a copy)
    OP_MATMUL = 25        # batched matrix product of two matrix stacks
    OP_ATTENTION = 26     # scaled dot-product attention of q, k, v token tensors
    OP_MHA = 27           # nn.MultiheadAttention: in-projection, attention, out-projection
    OP_PATCH_MERGE = 28   # 2x2 neighbourhoods to channels (Swin's patch merging)
    OP_PAD = 29           # zero padding: the input placed at (start, pad_h, pad_w) of a
                          # zero tensor out_channels x size_h x size_w (F.pad, nn.ZeroPad2d)
    OP_CROP = 30          # spatial window with a step, a view (x[:, :, a:b:s, c:d:t]):
                          # rows pad_h + i*stride_h for i < size_h, columns alike
    OP_SUB = 31           # element-wise difference; the second input broadcasts
    OP_DIV = 32           # element-wise quotient; the second input broadcasts
    OP_MEAN = 33          # mean over the axes in `extra` (1 channels, 2 height, 4 width),
                          # each reduced to 1 (x.mean(1, keepdim=True))
    OP_COPY = 34          # a copy of the input, same shape (x.permute(...).contiguous(), clone)
    OP_LOG_SOFTMAX = 35   # log-softmax over channels
    OP_EMBEDDING = 36     # token ids (one channel) -> rows of a table of `extra` x C
    OP_RMSNORM = 37       # root-mean-square norm over the channels (weight only)
    OP_ROPE = 38          # rotary position embedding of each head's channel pairs
    OP_KV_CACHE = 39      # append tokens to a cache of `size_h` past tokens; output: all of them
    OP_EXPERT_LINEAR = 40 # `groups` experts of a linear layer, each token routed to `size_h`
    OP_MOE_COMBINE = 41   # weighted sum of each token's top-k expert outputs
    N_OPS = 42

# How an op is invoked in torch code.  Hook-based counters see these
# differently (thop hooks modules only; ptflops also patches functions and a
# few tensor methods; fvcore and FlopCounterMode see aten ops), so a
# convention may weigh each kind apart.  Append only: stored in files.
cdef enum CallKind:
    CALL_MODULE = 0       # a torch.nn module's forward (the default)
    CALL_FUNCTION = 1     # torch.nn.functional.* or torch.*
    CALL_METHOD = 2       # a tensor method, x.relu()
    CALL_OPERATOR = 3     # a Python operator, x + y, x @ y
    N_CALLS = 4

# Activation kinds for OP_ACT.
cdef enum ActKind:
    ACT_RELU = 0
    ACT_RELU6 = 1
    ACT_HARDSWISH = 2
    ACT_HARDSIGMOID = 3
    ACT_SIGMOID = 4
    ACT_SILU = 5
    ACT_GELU = 6
    ACT_TANH = 7
    ACT_ADD_CONST = 8     # element-wise arithmetic with a constant (x + 3, x - 1, x * 0.5,
    ACT_SUB_CONST = 9     # x / 6, x ** 2): unary functions of one tensor, so activations
    ACT_MUL_CONST = 10
    ACT_DIV_CONST = 11
    ACT_POW_CONST = 12
    ACT_CLAMP = 13        # clamp / hardtanh with other bounds than relu's and relu6's
    ACT_SQRT = 14
    N_ACTS = 15

cdef enum Flag:
    FLAG_BIAS = 1              # conv/linear/scale carry a bias
    FLAG_AFFINE = 2            # batch/layer norm carry weight and bias
    FLAG_CEIL_MODE = 4         # pooling output size rounds up
    FLAG_EXCLUDE_PAD = 8       # avg pool: count_include_pad=False
    FLAG_INPLACE = 16          # act/add/mul/sub/div: overwrites its first input; concat:
                               # grows its first input's buffer (a chain continuation)
    FLAG_CAUSAL = 256          # attention: causal mask (counted in full unless scored otherwise)
    FLAG_TOKENS = 512          # view_as: the result is a token tensor (channels last);
                               # slice: along the tokens, not the channels
    FLAG_MATRIX = 1024         # view_as: the result is a stack of matrices
    FLAG_COPY = 2048           # view_as: the reshape copies (torch made it contiguous)
    FLAG_FLAT = 4096           # tokens: flatten the H x W grid to one axis of tokens
    FLAG_TIED = 8192           # linear: the weight is an earlier embedding's table
                               # (tied LM head): no parameters of its own, still read
    FLAG_CHECKPOINT = 16384    # training with full recomputation: this output is kept
                               # (a checkpoint) and starts a recomputed segment
    FLAG_CALLED_AGAIN = 32     # a module call whose module instance is called again by a
                               # later record (ResNet's shared relu): its parameters are
                               # counted at the last call only, and tools that keep a
                               # module's last call (torchstat) count this call zero

# Per-layer quantities a counting convention weighs (all already x batch).
cdef enum:  # Term
    T_MAC = 0        # multiply-accumulates of conv/linear
    T_OUT = 1        # output elements
    T_IN = 2         # elements of the first input
    T_BIAS = 3       # output elements if the layer has a bias, else 0
    T_AFFINE = 4     # output elements if the norm is affine, else 0
    T_WINDOW = 5     # pooling: input elements summed over all windows
    T_EXTRA_IN = 6   # elements of all inputs but the first
    T_ROWS = 7       # spatial positions x batch (N*H*W of the output)
    T_OUT_CH = 8     # output channels x batch
    T_ATTN_MAC = 9   # attention, mha: MACs of the two attention matmuls (Q.K^T, A.V)
    T_SCORES = 10    # attention, mha: attention scores (heads x queries x keys)
    T_SAMPLES = 11   # the batch itself: one per sample (torchstat's softmax "- 1")
    N_TERMS = 12

# Status codes; 0 is a valid architecture.  Messages live in scoring.py.
cdef enum Status:
    ST_OK = 0
    ST_EMPTY = 1            # architecture has no layers
    ST_NO_INPUT = 2         # first layer is not an input / input elsewhere
    ST_BAD_OP = 3           # unknown op code or activation kind
    ST_BAD_VALUE = 4        # channels, kernel, stride, ... out of range
    ST_BAD_GROUPS = 5       # groups do not divide the channels
    ST_BAD_INPUT_REF = 6    # input index forward, self, out of range or missing
    ST_SHAPE_MISMATCH = 7   # add/mul/concat inputs disagree
    ST_KERNEL_TOO_LARGE = 8 # kernel larger than the padded input
    ST_OVERFLOW = 9         # a count does not fit in int64
    ST_BAD_PADDING = 10     # pool padding larger than half the kernel
    ST_BAD_SHAPE = 11       # input shape not accepted (linear on HxW > 1)
    N_STATUS = 12

# Memory semantics: what act_bytes, read_bytes and write_bytes count
# (nasflops.options.MEMORY_SEMANTICS; README "Memory metrics").
cdef enum MemorySemantics:
    MEM_NASFLOPS = 0        # buffers allocated, bytes every op moves
    MEM_TORCHSTAT = 1       # torchstat 0.0.7's memory(MB), MemRead and MemWrite
    N_MEMORY = 2
