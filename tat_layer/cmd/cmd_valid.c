/* Darknet's classifier validations (`classifier valid ...`, and `distill classifier valid ...`),
   checked before they run: Darknet would crash on a labels file shorter than classes or a
   negative top=, report a wrong top-1 with exit 0 for top=0 or a list whose paths hold no label,
   and validate a random network when the weights are left out. */
#include <string.h>

#include "distill_commands.h"
#include "input_checks.h"
#include "tat_fail.h"

static int is_validation(const char *verb)
{
    static const char *verbs[] = {"valid", "validmulti", "valid10", "validcrop", "validfull", 0};
    int i;
    for (i = 0; verbs[i]; ++i)
        if (!strcmp(verb, verbs[i])) return 1;
    return 0;
}

/* Darknet's options of main() and run_classifier that take a value; the others are flags. */
static int takes_value(const char *option)
{
    static const char *with_value[] = {"-i", "-gpus", "-c", "-t", "-seed", 0};
    int i;
    for (i = 0; with_value[i]; ++i)
        if (!strcmp(option, with_value[i])) return 1;
    return 0;
}

void cmd_check_classifier_validation(int argc, char **argv)
{
    char *positional[4] = {0};
    int i, n = 0;
    if (argc < 3 || strcmp(argv[1], "classifier") || !is_validation(argv[2])) return;
    for (i = 3; i < argc && argv[i]; ++i) {
        if (argv[i][0] == '-' && argv[i][1]) {
            i += takes_value(argv[i]);
            continue;
        }
        if (n < 4) positional[n] = argv[i];
        ++n;
    }
    if (n < 2) return; /* Darknet's own usage line */
    if (n < 3)
        tat_fail("%s classifier %s %s %s: no weights given: it would validate an untrained network (give the weights file after the cfg)",
                 argv[0], argv[2], positional[0], positional[1]);
    train_need_readable(positional[2], "the weights");
    train_check_valid_data(positional[0]);
}
