# The plugin's stack, bottom to top; a folder's code includes only its own headers and those of
# the folders before it (tests/test_layering.sh checks that):
#   core    the math on raw floats: no Darknet type (tat.h, the BLAS core, fused buffers, metrics)
#   gpu     the CUDA twins of core and the kernel index code the CPU emulation test runs
#   backend Darknet's own CPU layers on oneDNN ([convolutional]), swapped in after parsing
#   layers  the section types, in Darknet's make_/forward_/backward_/update_ pattern
#   train   what Darknet's training loops need: checks, data, normalisation, distributed runs
#   cmd     the `darknet distill` subcommands (linked into the executable only)
TAT_LEVELS := core gpu backend layers train cmd
# Included from the repository top and from tat_layer/darknet.mk alike: the path of this folder.
TAT_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
TAT_INCLUDES := $(foreach d,$(TAT_LEVELS),-I$(TAT_ROOT)/$(d))
TAT_HEADERS := $(foreach d,$(TAT_LEVELS),$(wildcard $(TAT_ROOT)/$(d)/*.h))
