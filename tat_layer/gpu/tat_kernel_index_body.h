/* The per-element index functions of tat_kernel_index.h, over the index type TAT_IDX and named
 * through TAT_FN: included twice by tat_kernel_index.h (size_t, and unsigned int with the
 * suffix _32). Every index of the arithmetic is a TAT_IDX; geometry fields are ints. No include
 * guard on purpose. */

/* Map offset (NCHW) of block element bi (image-major blocks, each d x N channel-major); same
 * geometry and numbering as tat_patch_gather in tat.c. */
TAT_HD TAT_IDX TAT_FN(tat_patch_map_index)(tat_patch_geom g, TAT_IDX bi)
{
    int ph = g.h / g.grid_h, pw = g.w / g.grid_w;
    int per = g.grid_h * g.grid_w / g.groups;
    TAT_IDX N = (TAT_IDX)ph * pw, d = (TAT_IDX)per * g.c;
    TAT_IDX r = bi % N, e = (bi / N) % d, blk = bi / (N * d);
    int b = (int)(blk / g.groups), a = (int)(blk % g.groups);
    int pp = a * per + (int)(e / g.c), ch = (int)(e % g.c);
    int y = (pp / g.grid_w) * ph + (int)(r / pw), x = (pp % g.grid_w) * pw + (int)(r % pw);
    return (((TAT_IDX)b * g.c + ch) * g.h + y) * g.w + x;
}

/* Pooling output element o: the window mean, summed in the same order as tat_avgpool_forward. */
TAT_HD float TAT_FN(tat_pool_forward_value)(tat_pool_geom g, const float *in, TAT_IDX o)
{
    int oh = g.h / g.kh, ow = g.w / g.kw, y, x;
    TAT_IDX plane = o / ((TAT_IDX)oh * ow);
    int oy = (int)(o % ((TAT_IDX)oh * ow)) / ow, ox = (int)(o % ((TAT_IDX)oh * ow)) % ow;
    const float *src = in + plane * (TAT_IDX)g.h * g.w;
    float sum = 0;
    for (y = 0; y < g.kh; ++y)
        for (x = 0; x < g.kw; ++x) sum += src[(oy * g.kh + y) * g.w + ox * g.kw + x];
    return sum * (1.f / (g.kh * g.kw));
}

/* Pooling input element i: the output element whose window holds it, or -1 (rows/columns
 * past the last whole window). The backward is then a gather: no two threads write one
 * element. */
TAT_HD long long TAT_FN(tat_pool_window_of)(tat_pool_geom g, TAT_IDX i)
{
    int oh = g.h / g.kh, ow = g.w / g.kw;
    TAT_IDX plane = i / ((TAT_IDX)g.h * g.w);
    int y = (int)(i % ((TAT_IDX)g.h * g.w)) / g.w, x = (int)(i % ((TAT_IDX)g.h * g.w)) % g.w;
    int oy = y / g.kh, ox = x / g.kw;
    if (oy >= oh || ox >= ow) return -1;
    return (long long)((plane * oh + oy) * ow + ox);
}

/* Element ci of the batch-wide im2col (see tat_col_elements). */
TAT_HD float TAT_FN(tat_im2col_value)(tat_conv_geom g, const float *in, TAT_IDX ci)
{
    TAT_IDX hw = (TAT_IDX)g.h * g.w, bhw = hw * g.batch;
    TAT_IDX row = ci / bhw, col = ci % bhw, b = col / hw, p = col % hw;
    int pad = g.ksize / 2, kx = (int)(row % g.ksize), ky = (int)(row / g.ksize % g.ksize);
    int ch = (int)(row / ((TAT_IDX)g.ksize * g.ksize));
    int iy = (int)(p / g.w) + ky - pad, ix = (int)(p % g.w) + kx - pad;
    if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0;
    return in[((b * g.c + ch) * g.h + iy) * g.w + ix];
}

/* Input element i (NCHW): the sum of every col entry im2col copied it to (the adjoint, as a
 * gather: one writer per element). */
TAT_HD float TAT_FN(tat_col2im_value)(tat_conv_geom g, const float *col, TAT_IDX i)
{
    TAT_IDX hw = (TAT_IDX)g.h * g.w, bhw = hw * g.batch;
    TAT_IDX b = i / ((TAT_IDX)g.c * hw);
    int ch = (int)(i / hw % g.c), y = (int)(i % hw) / g.w, x = (int)(i % hw) % g.w;
    int pad = g.ksize / 2, ky, kx;
    float sum = 0;
    for (ky = 0; ky < g.ksize; ++ky)
        for (kx = 0; kx < g.ksize; ++kx) {
            int oy = y - ky + pad, ox = x - kx + pad; /* the output position that read (y, x) */
            if (oy < 0 || oy >= g.h || ox < 0 || ox >= g.w) continue;
            sum += col[(((TAT_IDX)ch * g.ksize + ky) * g.ksize + kx) * bhw + b * hw +
                       (TAT_IDX)oy * g.w + ox];
        }
    return sum;
}

/* Element i of a stacked NCHW array -> its place in the channel-major (n*c) x (batch*hw)
 * matrix (a permutation: one writer per element either way). */
TAT_HD TAT_IDX TAT_FN(tat_stack_cm_index)(tat_stack_geom g, TAT_IDX i)
{
    TAT_IDX hw = (TAT_IDX)g.hw, img = (TAT_IDX)g.c * hw, per = img * g.batch;
    TAT_IDX e = i / per, r = i % per, b = r / img, o = r % img / hw, p = r % hw;
    return ((e * g.c + o) * g.batch + b) * hw + p;
}

/* Element (blk, i, j) of dS = A (dP - 2w D_i): ds holds dP = (2w R)^T V on entry. */
TAT_HD void TAT_FN(tat_dscore_element)(float *ds, const float *a, const float *drow, float two_w,
                                       int N, TAT_IDX idx)
{
    TAT_IDX row = idx / N; /* = blk * N + i: drow is n_blocks x N */
    ds[idx] = a[idx] * (ds[idx] - two_w * drow[row]);
}
