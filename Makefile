# TaT distillation plugin for Darknet: top-level build.
#
#   make                  fetch + patch Darknet into darknet/, build build/<variant>/,
#                         link darknet/darknet to the built binary,
#                         build the helper programs tools/*.c into build/tools/
#   make test             install what is missing (make deps), build the CPU variant, compile
#                         tests/test_*.c, run tests/run.sh (TEST_FILTER='glob ...' runs a subset)
#   make check            the fast tier: the compiled unit tests only
#   make test-darknet-path  make test with the convolutional layers on Darknet's own code
#                         (TAT_BACKEND=darknet) instead of the oneDNN backend
#   make test-blas-cores  the unit tests under two other OpenBLAS kernel sets
#   make gpu-build-check  compile and link the GPU and GPU+cuDNN variants, the GPU test
#                         program and the GPU benchmark (no run)
#   make test-gpu         GPU builds (CUDNN=0 and CUDNN=1) + tests/gpu/ on each (kernels and
#                         layers against the CPU code in fp32, a short GPU distillation), and
#                         the cuDNN variant's errors in the default (TF32) math mode; each
#                         skips with one line without a device
#   make bench-gpu        GPU benchmark at the paper's settings (bench/bench_gpu.c)
#   make test-asan        the same tests on build/cpu-asan/ (AddressSanitizer + UBSan)
#   make test-valgrind    a short distillation run under valgrind: no leaks from the plugin
#   make fuzz FUZZ_SECONDS=60   libFuzzer (clang) on the cfg parser and the weights loader
#   make deps             install the Debian packages needed (scripts/install-deps.sh)
#   make darknet-git DARKNET_GIT=DIR   the patch series as a git checkout in DIR
#   make patches DARKNET_GIT=DIR       patches/ and patches/series from that checkout
#   make demo             the main job: Fashion-MNIST teacher, KD student on 1k labels + the unlabelled rest, student alone
#   make demo-seg         the same for segmentation (Fashion-MNIST canvases, mIoU)
#   make demo-detect      the same for detection (YOLOv3 on Fashion-MNIST canvases, mAP@0.5)
#   make study            every method x 3 seeds on Fashion-MNIST -> docs/results.md (1-1.5 h)
#   make study-lowdata    the low-data study (docs/study-protocol.md) -> docs/results-lowdata.md (2.5 h)
#   make bench            CPU benchmark tables (bench/run.sh; QUICK=1: about a third); not part of make test
#   make bench-mpi        all-reduce time of the ResNet-18 + TaT gradients over 2 local ranks
#   make clean / distclean
#
# Options (on the make command line): GPU CUDNN OPENCV OPENMP DEBUG (0/1, as in
# Darknet), ONEDNN (1, the default where dnnl.h is found and PORTABLE is off: the convolutional
# layers on oneDNN; 0: Darknet's own), PORTABLE=1 (static CUDA runtime, OpenBLAS, libpng: for scripts/gpu-check.sh prepare), MPI=1 (distributed training under mpirun/srun; NCCL too with GPU=1), SANITIZE=1 (ASan + UBSan, -O1 -g), BLAS=1 (OpenBLAS gemm; 0 = Darknet's own loops), ARCH (nvcc
# -gencode list), DARKNET_SRC=/path (use that Darknet checkout, no download).
# Each flag combination builds in its own build/<variant>/, so switching flags
# never forces a full rebuild. Plain '=' (not '?=') on purpose: an ARCH or
# DEBUG left in the environment by something else must not leak in.

GPU = 0
CUDNN = 0
OPENCV = 0
OPENMP = 0
DEBUG = 0
SANITIZE = 0
MPI = 0
BLAS = 1
PORTABLE = 0
# the oneDNN backend of the convolutional layers: on where dnnl.h compiles (make deps installs
# it); off in a PORTABLE build, whose machine has no libdnnl
ONEDNN_FOUND := $(shell printf '\043include <dnnl.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)
ONEDNN = $(if $(filter 1,$(PORTABLE)),0,$(ONEDNN_FOUND))
ONEDNN_LIBS = $(if $(filter 1,$(ONEDNN)),-ldnnl -lgomp)
DARKNET_SRC =
# CUDA 13 dropped everything below sm_75; PTX for compute_90 keeps newer GPUs working.
ARCH = -gencode arch=compute_75,code=sm_75 \
       -gencode arch=compute_80,code=sm_80 \
       -gencode arch=compute_86,code=sm_86 \
       -gencode arch=compute_89,code=sm_89 \
       -gencode arch=compute_90,code=[sm_90,compute_90]
CUDA_HOME = /usr/local/cuda
NVCC = $(or $(shell command -v nvcc 2>/dev/null),$(CUDA_HOME)/bin/nvcc)

# The patched Darknet tree; the binary is linked into it as darknet/darknet, where
# a Darknet user expects it.
DARKNET_TREE = darknet
DN = $(CURDIR)/$(DARKNET_TREE)
# the plugin's folders: TAT_LEVELS, TAT_INCLUDES, TAT_HEADERS
include tat_layer/levels.mk

ifeq ($(CUDNN), 1)
ifneq ($(GPU), 1)
$(error CUDNN=1 needs GPU=1)
endif
endif

# Same tests as Darknet's Makefile: only the exact value 1 enables a feature.
on = $(filter 1,$($(1)))
VARIANT := $(if $(call on,GPU),gpu,cpu)$(if $(call on,CUDNN),-cudnn)$(if $(call on,OPENMP),-openmp)$(if $(call on,OPENCV),-opencv)$(if $(call on,MPI),-mpi)$(if $(filter 1,$(BLAS)),,-noblas)$(if $(filter 1,$(ONEDNN)),,$(if $(call on,PORTABLE),,-noonednn))$(if $(call on,DEBUG),-debug)$(if $(call on,SANITIZE),-asan)$(if $(call on,PORTABLE),-portable)
OUT = $(CURDIR)/build/$(VARIANT)

# Build in parallel by default; an explicit -j from the user wins. Recursive
# on purpose: -j shows up in MAKEFLAGS only when recipes are expanded.
NPROC := $(shell nproc 2>/dev/null || echo 1)
SUBJOBS = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))

DARKNET_FLAGS = GPU=$(GPU) CUDNN=$(CUDNN) OPENCV=$(OPENCV) OPENMP=$(OPENMP) \
    DEBUG=$(DEBUG) BLAS=$(BLAS) MPI=$(MPI) PORTABLE=$(PORTABLE) ONEDNN=$(ONEDNN) \
    OBJDIR=$(OUT)/obj/ EXEC=$(OUT)/darknet SLIB=$(OUT)/libdarknet.so ALIB=$(OUT)/libdarknet.a
# Errors abort (no recovery) so that no report goes unnoticed in a passing run.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ifeq ($(SANITIZE), 1)
DARKNET_FLAGS += OPTS='-O1 -g $(SAN_FLAGS)'
endif
ifeq ($(GPU), 1)
DARKNET_FLAGS += ARCH='$(ARCH)' NVCC=$(NVCC)
endif

.PHONY: all build fetch tools test check test-darknet-path test-blas-cores test-bins darknet-git patches gpu-build-check deps demo demo-seg demo-detect study study-lowdata clean distclean \
    test-asan test-valgrind fuzz test-gpu test-gpu-variant gpu-test-bins bench-gpu

all: build tools
	@[ "$$(readlink $(DARKNET_TREE)/darknet)" = ../build/$(VARIANT)/darknet ] || \
	    ln -sfn ../build/$(VARIANT)/darknet $(DARKNET_TREE)/darknet

fetch:
	@DARKNET_SRC='$(DARKNET_SRC)' OPENCV=$(OPENCV) DARKNET_TREE=$(DARKNET_TREE) scripts/fetch-darknet.sh

# Darknet's Makefile does the building; tat_layer/darknet.mk adds the plugin.
build: fetch
	@mkdir -p $(OUT)/obj
	+$(MAKE) $(SUBJOBS) -C $(DARKNET_TREE) -f Makefile -f $(CURDIR)/tat_layer/darknet.mk $(DARKNET_FLAGS)

# --- tools: each tools/*.c is a standalone program (libpng + zlib, no Darknet).
TOOL_BINS = $(patsubst tools/%.c,build/tools/%,$(wildcard tools/*.c))
TOOL_CFLAGS = -O2 -g -Wall $(shell pkg-config --cflags libpng zlib 2>/dev/null)
TOOL_LIBS = $(or $(shell pkg-config --libs libpng zlib 2>/dev/null),-lpng -lz) -lm

tools: $(TOOL_BINS)

build/tools/%: tools/%.c $(wildcard tools/*.h)
	@mkdir -p $(@D)
	$(CC) $(TOOL_CFLAGS) $< -o $@ $(TOOL_LIBS)

# --- tests: each tests/test_*.c is one program linked against the CPU library.
CPU_OUT = $(CURDIR)/build/cpu
TEST_DIR = build/tests
TEST_SRCS = $(wildcard tests/test_*.c)
TEST_BINS = $(patsubst tests/%.c,$(TEST_DIR)/%,$(TEST_SRCS))
TEST_CFLAGS = $(TEST_EXTRA) -O2 -g -Wall -Wno-unused-result -DCBLAS $(shell pkg-config --cflags openblas 2>/dev/null) \
    -I$(DARKNET_TREE)/include -I$(DARKNET_TREE)/src $(TAT_INCLUDES)
TEST_LIBS = $(CPU_OUT)/libdarknet.a -lopenblas -lpng -lm -pthread $(ONEDNN_LIBS)

test: deps
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	@# the distributed-training tests run this variant under mpirun
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1 MPI=1
	@# -k: one broken test program must not hide the others; tests/run.sh
	@# reports a missing binary as a failure.
	+-$(MAKE) -k test-bins tools
	DARKNET=$(CPU_OUT)/darknet DARKNET_LIB=$(CPU_OUT)/libdarknet.a DARKNET_DIR=$(DN) \
	    DARKNET_MPI=$(CURDIR)/build/cpu-mpi/darknet tests/run.sh build/tests

test-bins: $(TEST_BINS)

# exit() that jumps back, as the fuzz targets have it
$(TEST_DIR)/test_tat_fail: TEST_LIBS += -Wl,--wrap=exit

# The same suite on Darknet's own layer code: TAT_BACKEND=darknet leaves the convolutional layers
# to Darknet's im2col + sgemm (the oneDNN backend stays built; test_backend_conv still compares
# the two paths in one binary).
test-darknet-path:
	+TAT_BACKEND=darknet $(MAKE) test

# The fast tier, for every edit: the compiled unit tests only (about 10 s to run).
check: deps
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	+-$(MAKE) -k test-bins
	TEST_KIND=c DARKNET=$(CPU_OUT)/darknet DARKNET_LIB=$(CPU_OUT)/libdarknet.a DARKNET_DIR=$(DN) \
	    tests/run.sh build/tests

# The compiled unit tests again under two other OpenBLAS kernel sets (scripts/other-blas-cores.sh),
# so that a tolerance tuned to the machine's own kernels fails here too.
test-blas-cores: check
	@cores=$$(scripts/other-blas-cores.sh); [ -n "$$cores" ] || { echo "test-blas-cores: no other core"; exit 1; }; \
	for core in $$cores; do echo "== OPENBLAS_CORETYPE=$$core"; \
	    OPENBLAS_CORETYPE=$$core TEST_KIND=c DARKNET=$(CPU_OUT)/darknet DARKNET_LIB=$(CPU_OUT)/libdarknet.a \
	        DARKNET_DIR=$(DN) tests/run.sh build/tests || exit 1; done

$(TEST_DIR)/%: tests/%.c $(CPU_OUT)/libdarknet.a $(TAT_HEADERS) $(wildcard tests/*.h) $(DARKNET_TREE)/include/darknet.h
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(TEST_CFLAGS) $< -o $@ $(TEST_LIBS)

# Sanitizer reports go to files (the bad-input tests expect non-zero exits, so an exit
# status alone cannot tell a sanitizer abort); any report fails the target. Leaks are
# valgrind's job (test-valgrind): Darknet's commands never free their networks.
ASAN_OUT = $(CURDIR)/build/cpu-asan
SAN_LOGS = $(CURDIR)/build/sanitizer-logs
test-asan:
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1 SANITIZE=1
	+-$(MAKE) -k test-bins tools CPU_OUT=$(ASAN_OUT) TEST_DIR=build/tests-asan TEST_EXTRA='$(SAN_FLAGS)'
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	ASAN_OPTIONS=detect_leaks=0:log_path=$(SAN_LOGS)/asan:exitcode=86 \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(SAN_LOGS)/ubsan:exitcode=86 \
	DARKNET=$(ASAN_OUT)/darknet DARKNET_LIB=$(ASAN_OUT)/libdarknet.a DARKNET_DIR=$(DN) \
	    tests/run.sh build/tests-asan; status=$$?; \
	if [ -n "$$(ls -A $(SAN_LOGS))" ]; then cat $(SAN_LOGS)/*; \
	    echo "test-asan: sanitizer reports above"; exit 1; fi; echo "test-asan: no sanitizer reports"; \
	exit $$status

test-valgrind:
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	+$(MAKE) tools
	DARKNET=$(CPU_OUT)/darknet bash tests/test_reliability_valgrind.sh

FUZZ_SECONDS = 60
fuzz:
	+$(MAKE) fetch
	FUZZ_SECONDS=$(FUZZ_SECONDS) DARKNET_DIR=$(DN) fuzz/run.sh

gpu-build-check:
	+$(MAKE) build GPU=1 CUDNN=0
	+$(MAKE) gpu-test-bins GPU=1 CUDNN=0
	+$(MAKE) build GPU=1 CUDNN=1
	+$(MAKE) gpu-test-bins GPU=1 CUDNN=1
	@# distributed training: MPI on the host, NCCL on the devices
	+$(MAKE) build GPU=1 CUDNN=0 MPI=1

# --- GPU tests and benchmark: linked against a GPU library (build/gpu or build/gpu-cudnn, as
# CUDNN says), never part of `make test` (which links the CPU library). tests/gpu/test_*.c and
# test_*.sh run through tests/run.sh.
GPU_VARIANT = gpu$(if $(call on,CUDNN),-cudnn)$(if $(call on,PORTABLE),-portable)
GPU_OUT = $(CURDIR)/build/$(GPU_VARIANT)
GPU_TEST_DIR = build/$(GPU_VARIANT)-tests
GPU_BENCH = build/bench/bench_$(subst -,_,$(GPU_VARIANT))
GPU_TEST_SRCS = $(wildcard tests/gpu/test_*.c)
GPU_TEST_BINS = $(patsubst tests/gpu/%.c,$(GPU_TEST_DIR)/%,$(GPU_TEST_SRCS))
# darknet.h's layer has cuDNN fields under CUDNN: the tests must see the library's layout
GPU_CFLAGS = $(TEST_CFLAGS) -DGPU $(if $(call on,CUDNN),-DCUDNN) -I$(CUDA_HOME)/include
GPU_LIBS = $(GPU_OUT)/libdarknet.a -L$(CUDA_HOME)/lib64 $(if $(call on,PORTABLE),$(PORTABLE_GPU_LIBS),-lcudart \
    -lcublas -lcurand $(if $(call on,CUDNN),-lcudnn) -lstdc++ -lopenblas -lpng) -lm -pthread $(ONEDNN_LIBS)
# PORTABLE=1 (tat_layer/darknet.mk): only the toolkit's and the wheels' libraries stay shared
PORTABLE_GPU_LIBS = -lcudart_static -ldl -lrt -lcublas -lcurand $(if $(call on,CUDNN),-lcudnn) -l:libstdc++.a \
    -l:libopenblas.a -l:libgfortran.a -l:libquadmath.a -l:libpng16.a -l:libz.a

gpu-test-bins: $(GPU_TEST_BINS) $(GPU_BENCH)
ifneq ($(filter gpu-test-bins,$(MAKECMDGOALS)),)
ifneq ($(call on,GPU),1)
$(error gpu-test-bins needs GPU=1 (CUDNN=0 or 1 chooses the library it links))
endif
endif

# The library and the patched tree come from `build` (which fetches first): order-only, so that
# `make -j build gpu-test-bins` builds the library before linking against it (no second build
# of the same tree in parallel), and an up-to-date library relinks nothing.
$(GPU_OUT)/libdarknet.a: | build ;
$(DARKNET_TREE)/include/darknet.h: | fetch ;

$(GPU_TEST_DIR)/%: tests/gpu/%.c $(GPU_OUT)/libdarknet.a $(TAT_HEADERS) $(wildcard tests/*.h) $(DARKNET_TREE)/include/darknet.h
	@mkdir -p $(@D)
	@rm -f $@
	$(CC) $(GPU_CFLAGS) $< -o $@ $(GPU_LIBS)

$(GPU_BENCH): bench/bench_gpu.c $(GPU_OUT)/libdarknet.a $(TAT_HEADERS)
	@mkdir -p $(@D)
	$(CC) $(GPU_CFLAGS) $< -o $@ $(GPU_LIBS)

# Both variants, each compared with the CPU in fp32 (TF32 off; see tests/gpu/test_gpu.c), then
# the cuDNN variant's errors in the libraries' default math mode, reported only.
test-gpu:
	+$(MAKE) test-gpu-variant GPU=1 CUDNN=0
	+$(MAKE) test-gpu-variant GPU=1 CUDNN=1
	@echo "== cuDNN variant in the default math mode (TF32 allowed): errors reported, not checked"
	build/gpu-cudnn-tests/test_gpu --default-math

test-gpu-variant:
	+$(MAKE) build GPU=1 CUDNN=$(CUDNN) OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	+$(MAKE) build GPU=1 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1 MPI=1
	+-$(MAKE) -k gpu-test-bins tools GPU=1 CUDNN=$(CUDNN)
	@echo "== GPU tests, $(GPU_VARIANT)"
	TESTS_DIR=$(CURDIR)/tests/gpu DARKNET=$(GPU_OUT)/darknet DARKNET_DIR=$(DN) \
	    DARKNET_MPI=$(CURDIR)/build/gpu-mpi/darknet \
	    tests/run.sh $(CURDIR)/$(GPU_TEST_DIR)

bench-gpu:
	+$(MAKE) build GPU=1 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	+$(MAKE) $(GPU_BENCH) GPU=1 CUDNN=0
	$(GPU_BENCH)

deps:
	scripts/install-deps.sh

# The patch series as a git history (scripts/darknet-git.sh): make darknet-git DARKNET_GIT=DIR
# makes the checkout, make patches DARKNET_GIT=DIR writes patches/ and patches/series from it.
DARKNET_GIT =
darknet-git patches:
	@[ -n "$(DARKNET_GIT)" ] || { echo "make $@: set DARKNET_GIT=<dir>"; exit 1; }
	scripts/darknet-git.sh $(if $(filter patches,$@),export,import) '$(DARKNET_GIT)'

demo:
	scripts/demo-fashion.sh

demo-seg:
	scripts/demo-segmentation.sh

demo-detect:
	scripts/demo-detect.sh

# not part of test: trains 6 methods x 3 seeds (scripts/study-fashion.sh says how to narrow it)
study:
	scripts/study-fashion.sh

# not part of test: the low-data study of docs/study-protocol.md, 60 runs (about 2.5 h on 2
# cores); LOWDATA_CONFIRM=1 afterwards runs its 2 confirmation seeds; scripts/study-lowdata.sh
# says how to narrow it and its smoke mode
study-lowdata:
	scripts/study-lowdata.sh

# --- bench: not part of test. bench_tat links tat.c and blas_core.c directly (the math the layers use, with
# oneDNN's sgemm for the largest products where the build has it, as the layers do); bench_distill (the whole distillation steps, against
# bench/bench_distill_torch.py) and bench_fashion link the BLAS library (and oneDNN), bench_fashion_noblas Darknet's stock gemm and
# convolutions.
BENCH_DIR = build/bench
BENCH_CFLAGS = -Ofast -Wall -Wno-unused-result -DCBLAS $(shell pkg-config --cflags openblas 2>/dev/null) -Itat_layer/core
# Darknet as it ships: its own gemm loops and its own convolutions
NOBLAS_OUT = $(CURDIR)/build/cpu-noblas$(if $(filter 1,$(ONEDNN_FOUND)),-noonednn)

.PHONY: bench
bench:
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=0 ONEDNN=0
	+$(MAKE) $(BENCH_DIR)/bench_tat $(BENCH_DIR)/bench_distill $(BENCH_DIR)/bench_fashion $(BENCH_DIR)/bench_fashion_noblas
	bench/run.sh $(BENCH_DIR)

# averaging the ResNet-18 + TaT gradients (or N floats: make bench-mpi MPI_FLOATS=N) over 2 local
# ranks through the training path; docs/distributed.md uses it
MPI_OUT = $(CURDIR)/build/cpu-mpi
MPI_FLOATS = 16419752
MPIRUN = mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
.PHONY: bench-mpi
bench-mpi:
	+$(MAKE) build GPU=0 CUDNN=0 OPENCV=0 OPENMP=0 DEBUG=0 BLAS=1 MPI=1
	+$(MAKE) $(BENCH_DIR)/bench_allreduce
	$(MPIRUN) -np 2 $(BENCH_DIR)/bench_allreduce $(MPI_FLOATS)

$(BENCH_DIR)/bench_allreduce: bench/bench_allreduce.c $(MPI_OUT)/libdarknet.a
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -DDISTILL_MPI $< -o $@ $(MPI_OUT)/libdarknet.a $$(mpicc --showme:link) -lopenblas -lpng -lm -pthread $(ONEDNN_LIBS)

$(BENCH_DIR)/bench_tat: bench/bench_tat.c $(wildcard tat_layer/core/*.c tat_layer/core/*.h)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) $(if $(filter 1,$(ONEDNN)),-DTAT_ONEDNN) bench/bench_tat.c tat_layer/core/tat.c tat_layer/core/tat_fail.c tat_layer/core/blas_core.c -o $@ -lopenblas -lm -pthread $(ONEDNN_LIBS)

$(BENCH_DIR)/bench_distill: bench/bench_distill.c $(CPU_OUT)/libdarknet.a
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(TEST_LIBS)

$(BENCH_DIR)/bench_fashion: bench/bench_fashion.c $(CPU_OUT)/libdarknet.a
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $< -o $@ $(TEST_LIBS)

$(BENCH_DIR)/bench_fashion_noblas: bench/bench_fashion.c $(NOBLAS_OUT)/libdarknet.a
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -I$(DARKNET_TREE)/include $(TAT_INCLUDES) $< -o $@ $(NOBLAS_OUT)/libdarknet.a -lpng -lm -pthread

clean:
	rm -rf build
	@[ ! -L $(DARKNET_TREE)/darknet ] || rm -f $(DARKNET_TREE)/darknet

distclean: clean
	rm -rf $(DARKNET_TREE) .$(DARKNET_TREE).staging.* .cache
