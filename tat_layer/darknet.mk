# Read by make after Darknet's own Makefile:
#   make -C darknet -f Makefile -f <abs>/tat_layer/darknet.mk ...
# It adds the plugin to Darknet's build without patching that Makefile.
#
# Conventions (the folders: tat_layer/levels.mk): tat_layer/cmd/*.c are linked into the
# executable only (they hold command entry points); every other tat_layer/*/*.c goes into
# libdarknet; tat_layer/gpu/*.cu are built only with GPU=1.
# Override TAT_SOURCES / TAT_CU_SOURCES (e.g. empty) to build without them.

include $(dir $(lastword $(MAKEFILE_LIST)))levels.mk
TAT_DIR := $(TAT_ROOT)

TAT_SOURCES ?= $(foreach d,$(TAT_LEVELS),$(wildcard $(TAT_DIR)/$(d)/*.c))
TAT_CU_SOURCES ?= $(wildcard $(TAT_DIR)/gpu/*.cu)
BLAS ?= 1

TAT_CMD_OBJ := $(notdir $(patsubst %.c,%.o,$(filter $(TAT_DIR)/cmd/%.c,$(TAT_SOURCES))))
TAT_LIB_OBJ := $(notdir $(patsubst %.c,%.o,$(filter-out $(TAT_DIR)/cmd/%.c,$(TAT_SOURCES))))
ifeq ($(GPU), 1)
TAT_LIB_OBJ += $(notdir $(patsubst %.cu,%.o,$(TAT_CU_SOURCES)))
endif

# Object names share one OBJDIR with Darknet's; a clash would silently drop a file.
TAT_CLASH := $(filter $(TAT_LIB_OBJ) $(TAT_CMD_OBJ),$(OBJ) $(EXECOBJA))
ifneq ($(TAT_CLASH),)
$(error tat_layer sources clash with Darknet object names: $(TAT_CLASH))
endif

OBJ += $(TAT_LIB_OBJ)
EXECOBJA += $(TAT_CMD_OBJ)
# Darknet's link rules were parsed before this file, with their prerequisite
# lists already expanded; add ours as extra prerequisites so $^ carries them.
$(ALIB) $(SLIB): $(addprefix $(OBJDIR),$(TAT_LIB_OBJ))
$(EXEC): $(addprefix $(OBJDIR),$(TAT_CMD_OBJ))

VPATH := $(VPATH)$(foreach d,$(TAT_LEVELS),:$(TAT_DIR)/$(d))
COMMON += $(TAT_INCLUDES)
# Plugin headers and these files (they set flags) must trigger rebuilds too.
DEPS += $(TAT_HEADERS) $(TAT_DIR)/darknet.mk $(TAT_DIR)/levels.mk

ifeq ($(BLAS), 1)
# Debian's libopenblas-dev: the pkg-config cflags point at the cblas.h of the
# selected OpenBLAS flavour; fall back to the default include path.
TAT_BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null)
COMMON += -DCBLAS $(TAT_BLAS_CFLAGS)
LDFLAGS += -lopenblas
endif

# ONEDNN=1: Darknet's convolutional layers on oneDNN (backend/); the top Makefile sets it to 1 when
# dnnl.h is found. libdnnl runs on OpenMP: libgomp is linked for the one thread count.
ONEDNN ?= 0
ifeq ($(ONEDNN), 1)
COMMON += -DTAT_ONEDNN
LDFLAGS += -ldnnl -lgomp
# the backend's own passes (fused BatchNorm, gradient sums) run on the same OpenMP threads
$(OBJDIR)backend_%.o: CFLAGS += -fopenmp
endif

# PNG class-index masks for segmentation (train/seg_data.c); stb_image cannot return palette indices.
TAT_PNG_CFLAGS := $(shell pkg-config --cflags libpng 2>/dev/null)
COMMON += $(TAT_PNG_CFLAGS)
LDFLAGS += $(or $(shell pkg-config --libs libpng 2>/dev/null),-lpng)

# MPI=1: distributed training (train/distill_mpi.c) over Open MPI, and NCCL for device buffers in
# GPU builds (NCCL ships with the CUDA toolkit).
ifeq ($(MPI), 1)
COMMON += -DDISTILL_MPI $(shell mpicc --showme:compile)
LDFLAGS += $(shell mpicc --showme:link)
ifeq ($(GPU), 1)
COMMON += -DDISTILL_NCCL
LDFLAGS += -lnccl
endif
endif

# Only the runtime API is used; libcuda (the driver) need not be linked.
LDFLAGS := $(filter-out -lcuda,$(LDFLAGS))
# PORTABLE=1: binaries that run where only the CUDA toolkit, the driver and Python's NVIDIA wheels
# are installed (scripts/gpu-check.sh prepare): the CUDA runtime, OpenBLAS (with its Fortran
# runtime), libpng, zlib and the C++ runtime linked statically; cuBLAS, cuRAND, cuDNN and NCCL
# stay shared (their static archives would make each binary hundreds of MiB).
ifeq ($(PORTABLE), 1)
# libdarknet.so keeps the shared libraries: the static archives are not position-independent
$(SLIB): LDFLAGS := $(LDFLAGS)
LDFLAGS := $(patsubst -lcudart,-lcudart_static -ldl -lrt,$(LDFLAGS))
LDFLAGS := $(patsubst -lopenblas,-l:libopenblas.a -l:libgfortran.a -l:libquadmath.a,$(LDFLAGS))
LDFLAGS := $(patsubst -lpng%,-l:libpng16.a -l:libz.a,$(LDFLAGS))
LDFLAGS := $(patsubst -lstdc++,-l:libstdc++.a,$(LDFLAGS))
endif
# The plugin's objects are reached from the executable's entry point (cmd/plugin_main.c), which
# the link lists after libdarknet's first scan and after the libraries: the library once more,
# then the libraries its plugin members need, so that those members find them.
TAT_EXEC_LIBS := $(ALIB) $(LDFLAGS)
$(EXEC): LDFLAGS += $(TAT_EXEC_LIBS)
