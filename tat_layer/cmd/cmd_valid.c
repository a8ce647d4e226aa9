/* Darknet's classifier validations (`classifier valid ...`, and `distill classifier valid ...`),
   checked before they run: Darknet would crash on a labels file shorter than classes or a
   negative top=, report a wrong top-1 with exit 0 for top=0 or a list whose paths hold no label,
   and validate a random network when the weights are left out. */
#include <string.h>

#include "distill_commands.h"
#include "input_checks.h"
#include "parser.h"
#include "tat_fail.h"

static int in_list(const char *word, const char *const *words)
{
    for (; *words; ++words)
        if (!strcmp(word, *words)) return 1;
    return 0;
}

static const char *const validations[] = {"valid", "validmulti", "valid10", "validcrop", "validfull", 0};
/* Darknet's options of main() and run_classifier that take a value; the others are flags. */
static const char *const options_with_value[] = {"-i", "-gpus", "-c", "-t", "-seed", 0};

void cmd_check_classifier_validation(int argc, char **argv)
{
    char *positional[4] = {0};
    int i, n = 0;
    if (argc < 3 || strcmp(argv[1], "classifier") || !in_list(argv[2], validations)) return;
    for (i = 3; i < argc && argv[i]; ++i) {
        if (argv[i][0] == '-' && argv[i][1]) {
            i += in_list(argv[i], options_with_value);
            continue;
        }
        if (n < 4) positional[n] = argv[i];
        ++n;
    }
    if (n < 2) return; /* Darknet's own usage line */
    if (n < 3) {
        /* a cfg mistake first, with the parser's own line, as Darknet would report it */
        parse_network_cfg(positional[1]);
        tat_fail("%s classifier %s %s %s: no weights given: it would validate an untrained network (give the weights file after the cfg)",
                 argv[0], argv[2], positional[0], positional[1]);
    }
    train_need_readable(positional[2], "the weights");
    train_check_valid_data(positional[0]);
}
