// Sandboxes with a filesystem that persists across runs: the files API, branch, diff and merge, the
// disk quota, and the attacks on them (symlink escapes through the files API, setuid bits and special
// files through a merge, a merge racing a run). Everything is checked from outside, as a user sees it.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';

import { describe, expect, test } from 'vitest';

import { ROOTLESS, record, sharedZeroboot, withZeroboot, zerobootError } from '../../../test/helpers.js';
import type { Sandbox } from '../src/index.js';

const zb = sharedZeroboot({ templates: { python: { pool: 2 }, node: { pool: 1 }, shell: { pool: 2 } }, limits: { diskMb: 64 } });

async function sandbox(): Promise<Sandbox> {
  return zb().sandbox();
}

async function sh(sb: Sandbox, code: string): Promise<string> {
  const r = await sb.run('shell', code);
  record(`shell: ${code}`, r);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
}

/** The promise rejects with a ZerobootError of this code. */
async function failsWith(promise: Promise<unknown>, code: string): Promise<void> {
  expect((await zerobootError(promise)).code).toBe(code);
}

const sha = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

describe('a sandbox keeps its files across runs', () => {
  test('what one run writes in /workspace and /tmp, the next run of any runtime sees; processes and env do not carry over', async () => {
    await using sb = await sandbox();
    expect((await sb.run('python', 'open("a.txt", "w").write("from python\\n"); open("/tmp/t", "w").write("tmp")', { env: { X: '1' } })).exitCode).toBe(0);
    expect(await sh(sb, 'cat a.txt /tmp/t; echo; echo "${X:-unset}"; pwd')).toBe('from python\ntmp\nunset\n/workspace\n');
    const node = await sb.run('node', 'const fs = require("fs"); fs.appendFileSync("a.txt", "from node\\n"); console.log(fs.readdirSync("."))');
    expect(node.stdout).toBe("[ 'a.txt' ]\n");
    expect(await sh(sb, 'cat a.txt; ls -ld /workspace | cut -c1-10')).toBe('from python\nfrom node\ndrwxr-xr-x\n');
    expect(await sb.files.read('a.txt', 'utf8')).toBe('from python\nfrom node\n');
  });

  test('runs on one sandbox are serialised; runs on two sandboxes are concurrent', async () => {
    await using a = await sandbox();
    await using b = await sandbox();
    const started = performance.now();
    // Each run appends its number after reading the last: interleaving would lose or reorder lines.
    const appends = Array.from({ length: 6 }, (_, i) => a.run('shell', `n=$(wc -l < log 2>/dev/null || echo 0); sleep 0.05; echo "${i} after $n" >> log`));
    const other = b.run('shell', 'sleep 0.3; echo done');
    await Promise.all(appends);
    expect((await other).stdout).toBe('done\n');
    expect(await a.files.read('log', 'utf8')).toBe(Array.from({ length: 6 }, (_, i) => `${i} after ${i}\n`).join(''));
    expect(performance.now() - started).toBeLessThan(3000);
  });

  test('a failed, timed-out or killed run keeps what it wrote before it ended', async () => {
    await using sb = await sandbox();
    const r = await sb.run('shell', 'echo partial > p.txt; sleep 5', { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(await sb.files.read('p.txt', 'utf8')).toBe('partial\n');
  });

  test('close frees the sandbox: later calls reject with SANDBOX_CLOSED, its layers leave the disk', async () => {
    const sb = await sandbox();
    await sb.files.write('x', 'y');
    const layersBefore = layerCount();
    await sb.close();
    await sb.close(); // twice is fine
    await failsWith(sb.run('shell', 'true'), 'SANDBOX_CLOSED');
    await failsWith(sb.files.read('x'), 'SANDBOX_CLOSED');
    await failsWith(sb.branch(), 'SANDBOX_CLOSED');
    expect(layerCount()).toBeLessThan(layersBefore);
  });

  test('zb.close() closes every sandbox and removes the layer store', async () => {
    let store: string | undefined;
    const before = ownStores();
    await withZeroboot({ templates: { shell: { pool: 1 } } }, async (z) => {
      const sb = await z.sandbox();
      await sb.files.write('f', 'data');
      const branch = await sb.branch();
      store = ownStores().find((d) => !before.includes(d));
      expect(store && existsSync(store)).toBe(true);
      await z.close();
      await failsWith(branch.run('shell', 'true'), 'SANDBOX_CLOSED');
      await failsWith(z.sandbox(), 'SANDBOX_CLOSED');
    });
    expect(existsSync(store!)).toBe(false);
  });
});

describe('files API', () => {
  test('write, read, list, exists, remove: relative to /workspace or absolute, text and exact bytes', async () => {
    await using sb = await sandbox();
    const bytes = new Uint8Array(randomBytes(70_000));
    await sb.files.write('dir/sub/bin.dat', bytes);
    await sb.files.write('/workspace/t.txt', 'héllo\n');
    await sb.files.write('/tmp/scratch', 'in tmp');
    expect(sha(await sb.files.read('dir/sub/bin.dat'))).toBe(sha(bytes));
    expect(await sb.files.read('t.txt', 'utf8')).toBe('héllo\n');
    expect(await sb.files.read('/tmp/scratch', 'utf8')).toBe('in tmp');
    expect(await sb.files.list('.')).toEqual([
      { name: 'dir', path: 'dir', type: 'dir', size: expect.any(Number) },
      { name: 't.txt', path: 't.txt', type: 'file', size: 7 },
    ]);
    expect(await sb.files.list('dir/sub')).toEqual([{ name: 'bin.dat', path: 'dir/sub/bin.dat', type: 'file', size: 70_000 }]);
    expect(await sb.files.exists('dir/sub/bin.dat')).toBe(true);
    expect(await sb.files.exists('nope')).toBe(false);
    await sb.files.remove('dir');
    expect(await sb.files.exists('dir/sub/bin.dat')).toBe(false);
    expect(await sh(sb, 'ls -A; cat t.txt')).toBe('t.txt\nhéllo\n');
    // The code sees what the files API wrote and the other way round.
    await sh(sb, 'printf "%s" from-code > made-by-code');
    expect(await sb.files.read('made-by-code', 'utf8')).toBe('from-code');
  });

  test('list keeps devices (and fifos, sockets), as type other', async () => {
    await using sb = await sandbox();
    // A run's fifos and sockets are not kept in the sandbox's layers; the devices in /dev are always there.
    const dev = await sb.files.list('/dev');
    expect(dev.find((entry) => entry.name === 'null')).toMatchObject({ path: '/dev/null', type: 'other' });
    expect(dev.filter((entry) => entry.type === 'other').map((entry) => entry.name)).toEqual(expect.arrayContaining(['null', 'random', 'urandom', 'zero']));
  });

  test('a 100 MB file round-trips intact', async () => {
    await withZeroboot({ templates: { shell: { pool: 1 } }, limits: { diskMb: 256, memoryMb: 512 } }, async (z) => {
      await using sb = await z.sandbox();
      const big = new Uint8Array(randomBytes(100 * 1024 * 1024));
      await sb.files.write('big.bin', big);
      expect((await sb.run('shell', 'stat -c %s big.bin; sha256sum big.bin | cut -d" " -f1')).stdout).toBe(`${big.length}\n${sha(big)}\n`);
      expect(sha(await sb.files.read('big.bin'))).toBe(sha(big));
    });
  }, 120_000);

  test('errors: FILE_NOT_FOUND, PATH_OUTSIDE_SANDBOX for ".." above the root, INVALID_ARGUMENT for read-only paths and bad input', async () => {
    await using sb = await sandbox();
    await failsWith(sb.files.read('missing.txt'), 'FILE_NOT_FOUND');
    await failsWith(sb.files.remove('missing.txt'), 'FILE_NOT_FOUND');
    await failsWith(sb.files.list('missing-dir'), 'FILE_NOT_FOUND');
    for (const path of ['../../etc/passwd', '/..', '../../../../..', 'a/../../../x']) {
      await failsWith(sb.files.read(path), 'PATH_OUTSIDE_SANDBOX');
      await failsWith(sb.files.write(path, 'x'), 'PATH_OUTSIDE_SANDBOX');
    }
    await failsWith(sb.files.write('/usr/bin/evil', 'x'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.write('/etc/passwd', 'x'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.read('.'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.read('/dev/zero'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.read('a\0b'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.read(''), 'INVALID_ARGUMENT');
    await failsWith(sb.files.write('x', 42 as never), 'INVALID_ARGUMENT');
    await failsWith(sb.files.remove('/'), 'INVALID_ARGUMENT');
    // ".." that stays inside is fine.
    await sb.files.write('a/../b.txt', 'b');
    expect(await sb.files.read('/workspace/b.txt', 'utf8')).toBe('b');
  });

  test('attack: symlinks planted by sandbox code never lead the files API to a host file', async () => {
    await using sb = await sandbox();
    const hostPasswd = readFileSync('/etc/passwd', 'utf8');
    const hostMarker = `/tmp/zb-host-file-${randomBytes(4).toString('hex')}`;
    await sh(sb, `ln -s / root; ln -s /etc/passwd pw; ln -s /etc/shadow shadow; ln -s ${hostMarker} host; ln -s loop1 loop2; ln -s loop2 loop1; ln -s /proc/1/root p1root; mkdir d; ln -s ../../.. d/up`);
    // Reads resolve inside the sandbox: its own /etc/passwd, not the host's.
    const passwd = await sb.files.read('pw', 'utf8');
    expect(passwd).toContain('sandbox:x:1000:1000');
    expect(passwd).not.toBe(hostPasswd);
    expect(await sb.files.read('root/etc/passwd', 'utf8')).toBe(passwd);
    expect(await sb.files.read('d/up/etc/hostname', 'utf8')).toBe('sandbox\n');
    expect(await sb.files.read('p1root/etc/passwd', 'utf8')).toBe(passwd);
    await failsWith(sb.files.read('shadow'), 'FILE_NOT_FOUND');
    await failsWith(sb.files.read('loop1'), 'PATH_OUTSIDE_SANDBOX');
    // Writes through a link land inside the sandbox, or fail: never on the host.
    await sb.files.write('host', 'written through a symlink');
    expect(existsSync(hostMarker)).toBe(false);
    expect(await sb.files.read(hostMarker, 'utf8')).toBe('written through a symlink'); // the sandbox's own /tmp
    await failsWith(sb.files.write('pw', 'x'), 'INVALID_ARGUMENT');
    expect(readFileSync('/etc/passwd', 'utf8')).toBe(hostPasswd);
    // remove() of a link removes the link, not its target.
    await sb.files.remove('root');
    expect(await sb.files.exists('/etc/passwd')).toBe(true);
    expect(await sh(sb, 'ls /usr/bin | wc -l | tr -d " " | grep -qv "^0$" && echo usr-intact')).toBe('usr-intact\n');
  });
});

describe('branch, diff and merge', () => {
  test('a branch sees the parent as it was; writes on either side stay on that side', async () => {
    await using sb = await sandbox();
    await sb.files.write('shared.txt', 'v1');
    await using br = await sb.branch();
    await br.files.write('shared.txt', 'branch');
    await br.files.write('only-branch.txt', 'b');
    await sb.files.write('only-parent.txt', 'p');
    expect(await sb.files.read('shared.txt', 'utf8')).toBe('v1');
    expect(await sb.files.exists('only-branch.txt')).toBe(false);
    expect(await br.files.exists('only-parent.txt')).toBe(false);
    expect(await sh(br, 'cat shared.txt')).toBe('branch');
  });

  test('diff: added, modified and deleted since the branch point, including /tmp, directories and replaced types', async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo 1 > keep; echo 1 > mod; echo 1 > del; mkdir -p d/e; echo 1 > d/e/f; echo 1 > file-then-dir; mkdir dir-then-file; echo x > dir-then-file/inner');
    expect(await sb.diff()).toContainEqual({ path: 'keep', kind: 'added' });
    await using br = await sb.branch();
    expect(await br.diff()).toEqual([]);
    await sh(br, 'echo 2 > mod; rm del; rm -r d; echo new > new; echo t > /tmp/t; rm file-then-dir; mkdir file-then-dir; touch file-then-dir/x; rm -r dir-then-file; echo now-a-file > dir-then-file; cat keep > /dev/null');
    expect(await br.diff()).toEqual([
      { path: '/tmp/t', kind: 'added' },
      { path: 'd', kind: 'deleted' },
      { path: 'd/e', kind: 'deleted' },
      { path: 'd/e/f', kind: 'deleted' },
      { path: 'del', kind: 'deleted' },
      { path: 'dir-then-file', kind: 'modified' },
      { path: 'dir-then-file/inner', kind: 'deleted' },
      { path: 'file-then-dir', kind: 'modified' },
      { path: 'file-then-dir/x', kind: 'added' },
      { path: 'mod', kind: 'modified' },
      { path: 'new', kind: 'added' },
    ]);
    // Deleting and re-creating the same content is still a change of that path; deleting what was added is nothing.
    await sh(br, 'rm new; rm keep; echo 1 > keep');
    const after = await br.diff();
    expect(after.find((c) => c.path === 'new')).toBeUndefined();
    expect(after).toContainEqual({ path: 'keep', kind: 'modified' });
  });

  test('merge applies the branch: additions, edits, deletions, directory replacement, symlinks and modes', async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo a > edit; echo a > gone; mkdir -p tree/sub; echo x > tree/sub/x; echo 1 > becomes-dir; mkdir becomes-file; echo 1 > becomes-file/y');
    await using br = await sb.branch();
    await sh(br, 'echo b >> edit; rm gone; rm -r tree; mkdir -p tree/other; echo new > tree/other/n; echo s > script.sh; chmod 750 script.sh; ln -s script.sh link; ln -s /etc/passwd abs-link; rm becomes-dir; mkdir becomes-dir; echo in > becomes-dir/in; rm -r becomes-file; echo file > becomes-file; echo t > /tmp/from-branch');
    const merged = await sb.merge(br);
    expect(merged.conflicts).toEqual([]);
    expect(merged.applied).toEqual(await br.diff());
    expect(await sh(sb, 'cat edit; ls tree; cat tree/other/n; stat -c "%a %F" script.sh; readlink link abs-link; cat becomes-dir/in becomes-file /tmp/from-branch; ls gone 2>&1 | grep -c "No such"')).toBe(
      'a\nb\nother\nnew\n750 regular file\nscript.sh\n/etc/passwd\nin\nfile\nt\n1\n',
    );
    // The parent's own diff now shows the merged work; the branch is untouched and still usable.
    expect(await sb.diff()).toContainEqual({ path: 'script.sh', kind: 'added' });
    expect(await sh(br, 'cat edit')).toBe('a\nb\n');
  });

  test('conflicts: "fail" applies nothing and reports all; "ours" and "theirs" settle them; identical edits are no conflict', async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo base > both; echo base > same; mkdir dir; echo 1 > dir/f; echo base > free');
    const make = async () => {
      const br = await sb.branch();
      await sh(br, 'echo theirs > both; echo same-edit > same; rm -r dir; echo theirs > added-by-branch');
      return br;
    };
    const br = await make();
    await sh(sb, 'echo ours > both; echo same-edit > same; echo 2 > dir/g; echo ours > free');
    const failed = await sb.merge(br);
    expect(failed).toEqual({ applied: [], conflicts: [{ path: 'both' }, { path: 'dir' }] });
    expect(await sh(sb, 'cat both; ls dir; ls added-by-branch 2>/dev/null || echo absent')).toBe('ours\nf\ng\nabsent\n');
    const ours = await sb.merge(br, { onConflict: 'ours' });
    expect(ours.conflicts).toEqual([{ path: 'both' }, { path: 'dir' }]);
    expect(await sh(sb, 'cat both added-by-branch; ls dir')).toBe('ours\ntheirs\nf\ng\n');
    await br.close();
    const br2 = await make();
    await sh(sb, 'echo ours-again > both');
    const theirs = await sb.merge(br2, { onConflict: 'theirs' });
    expect(theirs.conflicts).toContainEqual({ path: 'both' });
    expect(await sh(sb, 'cat both; ls dir 2>/dev/null || echo dir-gone')).toBe('theirs\ndir-gone\n');
    await br2.close();
    await failsWith(sb.merge(br2), 'SANDBOX_CLOSED');
    await failsWith(sb.merge(sb), 'INVALID_ARGUMENT');
    await failsWith(sb.merge(br2, { onConflict: 'mine' as never }), 'INVALID_ARGUMENT');
  });

  test('disjoint parallel branches merge in any order; a deep chain merges upward; a branch outlives its parent', async () => {
    await using sb = await sandbox();
    await sb.files.write('base.txt', 'base');
    const branches = await Promise.all([0, 1, 2, 3].map(() => sb.branch()));
    await Promise.all(branches.map((br, i) => br.run('python', `open("part-${i}.txt", "w").write("${i}")`)));
    for (const i of [2, 0, 3, 1]) expect((await sb.merge(branches[i]!)).conflicts).toEqual([]);
    expect(await sh(sb, 'cat part-0.txt part-1.txt part-2.txt part-3.txt')).toBe('0123');
    await Promise.all(branches.map((br) => br.close()));

    // A chain of 6: each level adds a file; merging each into its parent, bottom up, brings all to the top.
    const chain: Sandbox[] = [sb];
    for (let level = 1; level <= 6; level++) {
      const br = await chain[level - 1]!.branch();
      await br.files.write(`level-${level}`, String(level));
      chain.push(br);
    }
    for (let level = 6; level >= 1; level--) expect((await chain[level - 1]!.merge(chain[level]!)).conflicts).toEqual([]);
    expect(await sh(sb, 'cat level-1 level-2 level-3 level-4 level-5 level-6')).toBe('123456');

    // The parent closes; its branch keeps every file it had and keeps working.
    const parent = await sb.branch();
    await parent.files.write('from-parent', 'p');
    const child = await parent.branch();
    await parent.close();
    for (const br of chain.slice(1)) await br.close();
    expect(await sh(child, 'cat base.txt from-parent level-6')).toBe('basep6');
    await child.files.write('after', 'x');
    expect(await child.diff()).toEqual([{ path: 'after', kind: 'added' }]);
    await child.close();
  });

  test('compaction: 40 branch-merge-close steps leave a shallow stack and the right files', async () => {
    await using sb = await sandbox();
    for (let step = 0; step < 40; step++) {
      const br = await sb.branch();
      await br.files.write(`step-${step}`, String(step));
      await sb.merge(br);
      await br.close();
    }
    expect(await sh(sb, 'ls | wc -l')).toBe('40\n');
    expect(await stackDepth(sb)).toBeLessThanOrEqual(3);
  });

  test('branch is O(1): a 50 MB workspace branches in milliseconds, not in a copy', async () => {
    await using sb = await sandbox();
    await sh(sb, 'head -c 50000000 /dev/urandom > big; for i in $(seq 1 200); do echo $i > f$i; done');
    await sb.files.exists('big'); // the run's 50 MB are kept in the layer after its result: wait for that
    const started = performance.now();
    const br = await sb.branch();
    const ms = performance.now() - started;
    record('branch of a 50 MB workspace (ms)', ms);
    expect(ms).toBeLessThan(50); // a copy of 50 MB takes far longer; the bench measures the real figure
    expect(await sh(br, 'stat -c %s big; cat f200')).toBe('50000000\n200\n');
    await br.close();
  });

  test('attack: setuid bits, fifos and device-like files do not travel through a merge', async () => {
    await using sb = await sandbox();
    await using br = await sb.branch();
    await sh(br, 'cp /bin/true suid; chmod 4755 suid; cp /bin/true sgid; chmod 2755 sgid; mkfifo fifo; python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind(\'sock\')"; stat -c "%a" suid sgid');
    const r = await br.run('shell', 'mknod dev c 1 3 2>&1; echo rc=$?');
    expect(r.stdout).toMatch(/rc=1/); // no device nodes in a sandbox at all
    await sb.merge(br);
    expect(await sh(sb, 'stat -c "%n %a %F" suid sgid; ls fifo sock 2>&1 | grep -c "No such"')).toBe('suid 755 regular file\nsgid 755 regular file\n2\n');
  });

  test('attack: a merge racing runs is atomic as the runs see it', async () => {
    await using sb = await sandbox();
    await using br = await sb.branch();
    await sh(br, 'for i in $(seq 1 300); do echo merged > f$i; done');
    // Runs that count the merged files, queued around the merge: each sees 0 or 300, never a part.
    const counts = [sb.run('shell', 'ls | wc -l'), sb.run('shell', 'ls | wc -l')];
    const merge = sb.merge(br);
    counts.push(sb.run('shell', 'ls | wc -l'), sb.run('shell', 'sleep 0.05; ls | wc -l'));
    await merge;
    const seen = (await Promise.all(counts)).map((r) => r.stdout.trim());
    expect(seen).toEqual(['0', '0', '300', '300']);
  });
});

describe('disk quota (diskMb) of a sandbox', () => {
  test('a run writing past it gets ENOSPC inside; files.write past it is DISK_QUOTA_EXCEEDED; the host is untouched; freeing space works', async () => {
    await withZeroboot({ templates: { shell: { pool: 1 } }, limits: { diskMb: 8 } }, async (z) => {
      await using sb = await z.sandbox();
      const r = await sb.run('shell', 'head -c 6000000 /dev/zero > a; echo a=$?; head -c 6000000 /dev/zero > b; echo b=$?');
      expect(r.stdout).toMatch(/a=0\nb=1/);
      expect(r.stderr).toMatch(/No space left on device/);
      // What fitted was kept; the quota counts it on the next run too.
      expect((await sb.run('shell', 'head -c 4000000 /dev/zero > c; echo c=$?')).stdout).toBe('c=1\n');
      await failsWith(sb.files.write('big', new Uint8Array(5_000_000)), 'DISK_QUOTA_EXCEEDED');
      await sb.files.remove('a');
      await sb.files.write('big', new Uint8Array(5_000_000));
      expect((await sb.run('shell', 'stat -c %s big')).stdout).toBe('5000000\n');
    });
  });
});

describe('review findings', () => {
  test('attack: hard links and sparse files cannot make the fold write past the quota on the host', async () => {
    await withZeroboot({ templates: { shell: { pool: 1 } }, limits: { diskMb: 8 } }, async (z) => {
      await using sb = await z.sandbox();
      // 1 MB and 40 links to it: nothing on the tmpfs, 41 MB on the host if copied per name.
      const r = await sb.run('shell', 'head -c 1000000 /dev/zero > f; for i in $(seq 1 40); do ln f l$i; done; truncate -s 7M sparse; echo ok');
      expect(r.stdout).toBe('ok\n');
      await failsWith(sb.files.exists('f'), 'DISK_QUOTA_EXCEEDED'); // reported by the next call: nothing was kept
      expect(await sb.files.exists('f')).toBe(false);
      expect(await sb.diff()).toEqual([]);
    });
  });

  test('attack: files.read of /proc files is refused, not streamed without end', async () => {
    await using sb = await sandbox();
    await sh(sb, 'ln -s /proc/self/pagemap pm');
    await failsWith(sb.files.read('pm'), 'INVALID_ARGUMENT');
    await failsWith(sb.files.read('/proc/self/status'), 'INVALID_ARGUMENT');
  });

  test("a branch's diff survives its parent and siblings closing (its branch point folded down)", async () => {
    const ws = await sandbox();
    await ws.files.write('before', '1');
    const b1 = await ws.branch();
    const b2 = await ws.branch();
    await ws.close();
    await b1.close();
    await b2.files.write('mine', '2');
    expect(await b2.diff()).toEqual([{ path: 'mine', kind: 'added' }]);
    expect(await b2.files.read('before', 'utf8')).toBe('1');
    await b2.close();
  });
});

describe('second review findings', () => {
  test('a directory replaced on one side (rm -r, mkdir) conflicts with a file added in it on the other: nothing is lost silently', async () => {
    await using sb = await sandbox();
    await sh(sb, 'mkdir src; echo a > src/a; echo b > src/b');
    await using br = await sb.branch();
    await sh(br, 'rm -rf src; mkdir src; echo new > src/new');
    await sh(sb, 'echo ours > src/c');
    expect(await br.diff()).toEqual([
      { path: 'src', kind: 'modified' },
      { path: 'src/a', kind: 'deleted' },
      { path: 'src/b', kind: 'deleted' },
      { path: 'src/new', kind: 'added' },
    ]);
    expect(await sb.merge(br)).toEqual({ applied: [], conflicts: [{ path: 'src' }] });
    expect(await sh(sb, 'ls src')).toBe('a\nb\nc\n');
    expect((await sb.merge(br, { onConflict: 'ours' })).applied).toEqual([]);
    expect(await sh(sb, 'ls src')).toBe('a\nb\nc\n');
    expect((await sb.merge(br, { onConflict: 'theirs' })).conflicts).toEqual([{ path: 'src' }]);
    expect(await sh(sb, 'ls src')).toBe('new\n');
  });

  test("a run's writes the host cannot store (a path past PATH_MAX there) are dropped whole: nothing half-kept, the sandbox still works", async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo before > kept');
    const name = 'd'.repeat(250);
    // 20 levels of 251 bytes: ~5 KB below /workspace, fine inside (each mkdir is relative), too long for a host path.
    const layers = layerCount();
    const r = await sb.run('shell', `echo new > new-file; for i in $(seq 1 20); do mkdir ${name} && cd ${name} || exit 1; done; echo deep > f; echo ok`);
    expect(r.stdout).toBe('ok\n');
    const error = await zerobootError(sb.files.read('kept'));
    expect(error.code).toBe('SANDBOX_SETUP_FAILED');
    expect(error.message).toMatch(/could not be kept/);
    expect(layerCount()).toBe(layers); // the layer the copy went to is gone from the host's disk too
    expect(await sh(sb, 'cat kept; ls -A; id -u')).toMatch(/^before\nkept\n\d+\n$/);
    expect(await sb.diff()).toEqual([{ path: 'kept', kind: 'added' }]);
  });

  test('files.remove refuses the mounts (/workspace, /tmp) before touching what is in them, and removes trees of any depth', async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo w > w; echo t > /tmp/t');
    for (const path of ['.', '/workspace', '/tmp', 'sub/..', '/dev/shm']) {
      const error = await zerobootError(sb.files.remove(path));
      expect(error.code, path).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/cannot be removed/);
    }
    expect(await sh(sb, 'cat w /tmp/t')).toBe('w\nt\n');
    // 1200 levels: more than a descent holding one fd per level should need (1024 is a common limit); the path still fits the host's PATH_MAX.
    await sb.run('python', 'import os\nfor i in range(1200):\n    os.mkdir("d"); os.chdir("d")\nopen("leaf", "w").write("x")');
    expect(await sh(sb, 'find d | wc -l')).toBe('1201\n');
    await sb.files.remove('d');
    expect(await sb.files.exists('d')).toBe(false);
    expect(await sh(sb, 'ls -A')).toBe('w\n');
  });

  test('errors say what happened: a file listed is not a directory, an unreadable file is a permission error, not "read-only"', async () => {
    await using sb = await sandbox();
    await sh(sb, 'echo x > file; echo s > secret; chmod 000 secret; mkdir closed; echo y > closed/in; chmod 000 closed');
    if (ROOTLESS) {
      // Rootless, the SDK is the files' owner without CAP_DAC_OVERRIDE: it cannot read what the run made
      // unreadable to its owner, so that run's writes cannot be kept and are dropped whole, with an error
      // that says so (docs/security.md, "Rootless mode").
      const dropped = await zerobootError(sb.files.list('.'));
      expect(dropped.code).toBe('SANDBOX_SETUP_FAILED');
      expect(dropped.message).toMatch(/EACCES/);
      expect(await sb.files.exists('file')).toBe(false);
      return;
    }
    const notDir = await zerobootError(sb.files.list('file'));
    expect(notDir.code).toBe('INVALID_ARGUMENT');
    expect(notDir.message).toMatch(/not a directory/);
    await failsWith(sb.files.list('file/below'), 'FILE_NOT_FOUND');
    await failsWith(sb.files.list('missing'), 'FILE_NOT_FOUND');
    for (const promise of [sb.files.read('secret'), sb.files.list('closed'), sb.files.read('closed/in')]) {
      const error = await zerobootError(promise);
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/Permission denied/);
    }
    expect((await zerobootError(sb.files.write('/usr/x', 'x'))).message).toMatch(/read-only/);
  });

  test('attack: empty directories cost the tmpfs nothing but a block each on the host: they count against the quota when kept', async () => {
    await withZeroboot({ templates: { shell: { pool: 1 } }, limits: { diskMb: 8 } }, async (z) => {
      await using sb = await z.sandbox();
      // 5 MB of data and 1000 directories (4 MB on the host): fits the 8 MB tmpfs, not the 8 MB quota.
      const r = await sb.run('shell', 'head -c 5000000 /dev/zero > data; mkdir $(seq 1 1000); echo ok');
      expect(r.stdout).toBe('ok\n');
      await failsWith(sb.files.exists('data'), 'DISK_QUOTA_EXCEEDED');
      expect(await sb.files.exists('data')).toBe(false);
    });
  });

  test('the quota counts what a branch shares with its parent: branching and closing branches neither frees nor overfills it', async () => {
    await withZeroboot({ templates: { shell: { pool: 1 } }, limits: { diskMb: 8 } }, async (z) => {
      await using sb = await z.sandbox();
      expect((await sb.run('shell', 'head -c 5000000 /dev/zero > a; echo $?')).stdout).toBe('0\n');
      const br = await sb.branch();
      // Both still hold the 5 MB: 4 MB more does not fit on either side; 2 MB does.
      for (const side of [sb, br]) {
        expect((await side.run('shell', 'head -c 4000000 /dev/zero > more; echo $?; rm more')).stdout).toBe('1\n');
        expect((await side.run('shell', 'head -c 2000000 /dev/zero > more; echo $?')).stdout).toBe('0\n');
      }
      await br.close(); // the shared layer is now the parent's alone, and gets folded: still 7 MB, still under 8
      expect((await sb.run('shell', 'head -c 2000000 /dev/zero > again; echo $?')).stdout).toBe('1\n');
      expect((await sb.run('shell', 'stat -c %s a more')).stdout).toBe('5000000\n2000000\n');
    });
  });
});

describe('isolation of the layer store', () => {
  test('the layer store is out of reach: covered, empty and read-only where the fork-server binds it', async () => {
    await using sb = await sandbox();
    await sb.files.write('mine', 'x');
    // mountinfo names the store's host directory (as it names the state directory behind /etc), but
    // nothing in the sandbox can open it: its one bind is covered before any code runs.
    expect(await sh(sb, 'ls -A /run/layers | wc -l; touch /run/layers/x 2>/dev/null || echo read-only; ls /proc/self/fd | wc -l')).toBe('0\nread-only\n4\n');
    expect((await zb().run('shell', 'ls -A /run/layers | wc -l')).stdout).toBe('0\n');
    // The staging tmpfs with the run's upper directory is covered: the code cannot write behind the overlay.
    expect(await sh(sb, 'ls -A /run/zeroboot | wc -l; touch /run/zeroboot/x 2>/dev/null || echo read-only')).toBe('0\nread-only\n');
  });
});

/** This process's layer stores on the host (white-box: what the disk holds). */
function ownStores(): string[] {
  const parent = ROOTLESS ? `/var/tmp/zeroboot-${process.getuid!()}` : '/var/tmp/zeroboot';
  return readdirSync(parent)
    .filter((d) => d.startsWith(`${process.pid}-`))
    .map((d) => `${parent}/${d}`)
    .filter((d) => statSync(d).isDirectory());
}

function layerCount(): number {
  return ownStores().reduce((n, store) => n + readdirSync(store).length, 0);
}

/** How many layers a run of this sandbox mounts, from the overlay's options in its own mountinfo. */
async function stackDepth(sb: Sandbox): Promise<number> {
  const lowers = await sh(sb, "grep -o 'lowerdir=[^, ]*' /proc/self/mountinfo | head -1 | tr ':' '\\n' | wc -l");
  return Number(lowers.trim());
}
