/* The plugin's entry point: main() calls darknet_plugin_init first (darknet.h). */
#include <string.h>

#include "distill_commands.h"
#include "plugin.h"

static int run_command(int argc, char **argv)
{
    if (strcmp(argv[1], "distill")) return 0;
    cmd_distill(argc, argv);
    return 1;
}

static void (*library_startup)(int argc, char **argv);

/* Darknet's own commands that the plugin checks before they run (`classifier valid` and the
   other validations; `distill classifier valid` checks the same in cmd_distill.c). */
static void startup(int argc, char **argv)
{
    if (library_startup) library_startup(argc, argv);
    cmd_check_classifier_validation(argc, argv);
}

void darknet_plugin_init(struct darknet_plugin *plugin)
{
    train_plugin_hooks(plugin);
    library_startup = plugin->startup;
    plugin->startup = startup;
    plugin->run_command = run_command;
}
