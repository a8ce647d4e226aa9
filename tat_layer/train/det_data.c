/* Detection data: the label path rule of Darknet's detector loader (det_data.h). */
#include "det_data.h"

#include <string.h>

#include "utils.h"

/* Darknet's find_replace writes into a 4096-byte buffer without a bound */
#define FIND_REPLACE_BUFFER 4096

int train_detection_label_path(const char *image, char *out, size_t size)
{
    static const char *from[] = {"images", "JPEGImages", "raw", ".jpg", ".png", ".JPG", ".JPEG"};
    static const char *to[] = {"labels", "labels", "labels", ".txt", ".txt", ".txt", ".txt"};
    char buf[FIND_REPLACE_BUFFER];
    size_t i;
    /* each replacement can grow the path by at most 4 characters ("raw" -> "labels": 3) */
    if (strlen(image) + 4 * 7 >= sizeof(buf)) return 0;
    find_replace((char *)image, (char *)from[0], (char *)to[0], buf);
    for (i = 1; i < sizeof(from) / sizeof(from[0]); ++i)
        find_replace(buf, (char *)from[i], (char *)to[i], buf);
    if (strlen(buf) >= size) return 0;
    strcpy(out, buf);
    return 1;
}
