# Builds the libFuzzer targets (clang): make -f fuzz/fuzz.mk [DN=darknet] [OUT=build/fuzz]
# Darknet's library sources and the plugin's, instrumented for coverage, ASan and UBSan.
DN = darknet
OUT = build/fuzz
include tat_layer/levels.mk
CC = clang
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS = -O1 -g -fno-omit-frame-pointer $(SAN) -DCBLAS $(shell pkg-config --cflags openblas 2>/dev/null) \
    -I$(DN)/include -I$(DN)/src $(TAT_INCLUDES) -w
LIBS = -lopenblas -lpng -lm -pthread

# Darknet's own object list (only its C files) and the plugin's library files.
DN_OBJ := $(filter-out image_opencv.o,$(shell sed -n 's/^OBJ=//p' $(DN)/Makefile))
TAT_SRC := $(foreach d,$(filter-out cmd,$(TAT_LEVELS)),$(wildcard tat_layer/$(d)/*.c))
OBJS := $(addprefix $(OUT)/obj/,$(DN_OBJ) $(notdir $(TAT_SRC:.c=.o)))

all: $(OUT)/fuzz_cfg $(OUT)/fuzz_weights

$(OUT)/obj/%.o: $(DN)/src/%.c $(wildcard $(DN)/src/*.h) $(DN)/include/darknet.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

vpath %.c $(foreach d,$(TAT_LEVELS),tat_layer/$(d))
$(OUT)/obj/%.o: %.c $(TAT_HEADERS) $(DN)/include/darknet.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(OUT)/fuzz_cfg: fuzz/fuzz_distill.c $(OBJS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -DFUZZ_CFG $^ -o $@ -Wl,--wrap=exit,--wrap=fopen,--wrap=fclose $(LIBS)

$(OUT)/fuzz_weights: fuzz/fuzz_distill.c $(OBJS)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -DFUZZ_WEIGHTS $^ -o $@ -Wl,--wrap=exit,--wrap=fopen,--wrap=fclose $(LIBS)
