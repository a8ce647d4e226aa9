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

void darknet_plugin_init(struct darknet_plugin *plugin)
{
    train_plugin_hooks(plugin);
    plugin->run_command = run_command;
}
