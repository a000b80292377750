#!/usr/bin/env escript
%%! +sbwt none +sbwtdcpu none +sbwtdio none
%% SPDX-License-Identifier: Apache-2.0
%% ets_bench.escript: the operations of bench_table.c, done in Erlang's ETS
%% in the same `make bench` run, so that the table rows compare with ETS
%% measured on this machine at this moment rather than with a quoted figure.
%%
%%   escript tests/bench/ets_bench.escript [SECONDS-PER-ROW [ordered]]
%%
%% ("ordered": the ordered_set rows only, as make bench-table BENCH_ONLY=ordered)
%%
%% Prints one result row per line (JSON, the shape of benchutil.h's rows):
%% update_counter on one key from 1 and 2 processes, insert of 1,000,000
%% new small keys into a fresh table (with its growth), lookups of those
%% keys at random from 1 process and from 2 (the table has read_concurrency,
%% as a table read from several processes would), and the
%% bytes per entry at 1,000,000 entries; then the same on an ordered_set
%% (keys inserted in random order, as bench_table's ordered rows do),
%% with ets:foldl over all of it for the in-order walk, and walks of 100
%% keys (ets:next from a random key) in tables of 10,000, 1,000,000 and
%% 10,000,000 entries: how ETS's own range walks scale with the table, for
%% context beside bench_table's; these rows also give their operations per
%% CPU-second of the VM, as bench_table does.
%% Keys and values are small integers, ETS's cheapest entry, as
%% bench_table's are 8-byte keys with integer values.  Random keys come
%% from a 32-bit LCG, not rand:uniform, so the loop costs little next to
%% the ETS call, as xorshift does in C.
%% Timing rows run for SECONDS (1 by default); 2-process rows start both
%% workers together and sum their counts.  Compiled (mode(compile)), so
%% BEAM runs it as it runs any module, JIT included where the VM has one.
%% The %%! line turns off the schedulers' busy-waiting: on 2 shared cores
%% an idle scheduler spinning takes the CPU the measured one needs (it
%% halved every figure here), and C's side does not spin either.
-mode(compile).

-define(NKEYS, 1000000).
-define(BATCH, 1000).

main(Args) ->
    Secs = case Args of
               [S | _] -> list_to_float_any(S);
               _ -> 1.0
           end,
    case Args of
        [_, "ordered"] -> ordered(Secs, erlang:system_info(wordsize));
        _ -> all(Secs)
    end.

all(Secs) ->
    WordSize = erlang:system_info(wordsize),
    Sched = erlang:system_info(schedulers_online),
    note(io_lib:format("Erlang/OTP ~s, ERTS ~s, ~b schedulers online, JIT: ~s",
                       [erlang:system_info(otp_release), erlang:system_info(version), Sched,
                        jit()])),
    %% update_counter on one key
    C = ets:new(c, [set, public, {write_concurrency, true}]),
    ets:insert(C, {counter, 0}),
    row("ETS: update_counter, 1 process", run(fun(_) -> counter_loop(C, deadline(Secs), 0) end, 1, Secs)),
    row("ETS: update_counter, 2 processes, 1 key",
        run(fun(_) -> counter_loop(C, deadline(Secs), 0) end, 2, Secs)),
    ets:delete(C),
    %% 1,000,000 new keys into a fresh table, growth included
    T = ets:new(t, [set, public, {read_concurrency, true}]),
    T0 = erlang:monotonic_time(),
    insert_loop(T, 0),
    Fill = ?NKEYS / seconds_since(T0),
    row("ETS: insert 1M new keys (with growth)", Fill / 1.0e6),
    row("ETS: lookup 1M keys at random, 1 proc",
        run(fun(W) -> lookup_loop(T, deadline(Secs), 88172645 + W, 0) end, 1, Secs)),
    row("ETS: lookup 1M keys at random, 2 procs",
        run(fun(W) -> lookup_loop(T, deadline(Secs), 88172645 + W, 0) end, 2, Secs)),
    bytes_row("ETS: bytes per entry, 1M small entries", T, WordSize),
    ets:delete(T),
    ordered(Secs, WordSize),
    ok.

%% The ordered_set rows: 1,000,000 random keys inserted, random lookups of
%% them, in-order walks (ets:foldl) for SECONDS, the bytes per entry.
ordered(Secs, WordSize) ->
    T = ets:new(o, [ordered_set, public, {read_concurrency, true}]),
    Keys = okeys(),
    C0 = cpu_ms(),
    T0 = erlang:monotonic_time(),
    oinsert_loop(T, Keys, 1),
    cpu_row("ETS: ordered_set insert 1M random keys", ?NKEYS / seconds_since(T0) / 1.0e6, ?NKEYS, C0),
    C1 = cpu_ms(),
    MOps = run(fun(W) -> olookup_loop(T, Keys, deadline(Secs), 88172645 + W, 0) end, 1, Secs),
    cpu_row("ETS: ordered_set lookup 1M keys at random, 1 proc", MOps, MOps * 1.0e6 * Secs, C1),
    %% timed by itself: one walk may take longer than SECONDS
    C2 = cpu_ms(),
    T1 = erlang:monotonic_time(),
    Walked = walk_loop(T, deadline(Secs), 0),
    cpu_row("ETS: ordered_set walk 1M entries in order (foldl)", Walked / seconds_since(T1) / 1.0e6, Walked, C2),
    bytes_row("ETS: ordered_set bytes per entry, 1M small entries", T, WordSize),
    oranges(Secs, T),
    ets:delete(T).

%% Walks of 100 keys from a random key (ets:next, keys only: each step is
%% a search from the root, as ETS's next is), in tables of 10K entries, the
%% 1M one above, and 10M (about 1 GB of the VM for the time of its row);
%% the 10K and 10M tables' keys are a 40-bit bijection of 0..N-1, random in
%% key order as the 1M table's are.  Then the time of a walk at 1M and
%% 10M over its time at 10K, per CPU-second, as bench_table prints its own.
oranges(Secs, T1M) ->
    Small = ets:new(os, [ordered_set, public]),
    ofill(Small, 0, 10000),
    R1 = range_row("ETS: ordered_set range walks of 100 keys (ets:next), 10K entries", Small, Secs),
    ets:delete(Small),
    R2 = range_row("ETS: ordered_set range walks of 100 keys (ets:next), 1M entries", T1M, Secs),
    Big = ets:new(ob, [ordered_set, public]),
    ofill(Big, 0, 10 * ?NKEYS),
    R3 = range_row("ETS: ordered_set range walks of 100 keys (ets:next), 10M entries", Big, Secs),
    ets:delete(Big),
    %% 10M keys inserted in ascending order (time-ordered keys), spread
    %% over the same 40-bit space, as bench_table's "10M ascending" row
    Asc = ets:new(oa, [ordered_set, public]),
    afill(Asc, 0, 10 * ?NKEYS, (1 bsl 40) div (10 * ?NKEYS)),
    R4 = range_row("ETS: ordered_set range walks of 100 keys (ets:next), 10M ascending", Asc, Secs),
    ets:delete(Asc),
    ratio_row("ETS: ordered_set range time, 1M / 10K entries", R1 / R2),
    ratio_row("ETS: ordered_set range time, 10M / 10K entries", R1 / R3),
    ratio_row("ETS: ordered_set range time, 10M ascending / 10K", R1 / R4).

afill(_, N, N, _) -> ok;
afill(T, I, N, Step) ->
    true = ets:insert(T, {I * Step, I}),
    afill(T, I + 1, N, Step).

ofill(_, N, N) -> ok;
ofill(T, I, N) ->
    true = ets:insert(T, {mix40(I), I}),
    ofill(T, I + 1, N).

%% A bijection of 40-bit integers (a 3-round Feistel network on 20-bit
%% halves; every product stays a small integer).
mix40(X) -> feistel(X bsr 20, X band 16#FFFFF, 3).

feistel(L, R, 0) -> (L bsl 20) bor R;
feistel(L, R, N) ->
    F = ((R * 16#9E3779B1 + N * 16#7F4A7C15) bsr 11) band 16#FFFFF,
    feistel(R, L bxor F, N - 1).

%% Keys walked per CPU-second (the row also prints M keys/s on the clock).
range_row(Name, T, Secs) ->
    C0 = cpu_ms(),
    T0 = erlang:monotonic_time(),
    Keys = range_loop(T, deadline(Secs), 88172645, 0),
    Cpu = max(cpu_ms() - C0, 1) / 1000,
    cpu_row(Name, Keys / seconds_since(T0) / 1.0e6, Keys, C0),
    Keys / Cpu.

range_loop(T, End, X, N) ->
    X2 = range_batch(T, X, 64),
    case erlang:monotonic_time() < End of
        true -> range_loop(T, End, X2, N + 64 * 100);
        false -> N + 64 * 100
    end.

range_batch(_, X, 0) -> X;
range_batch(T, X, I) ->
    X2 = (X * 69069 + 1) band 16#FFFFFFFF,
    walk_next(T, X2 bsl 8, 100), % a random 40-bit start, present or not
    range_batch(T, X2, I - 1).

walk_next(_, _, 0) -> ok;
walk_next(T, K, N) ->
    case ets:next(T, K) of
        '$end_of_table' -> ok;
        K2 -> walk_next(T, K2, N - 1)
    end.

ratio_row(Name, X) ->
    io:format("{\"name\":\"~s\",\"value\":~.2f,\"unit\":\"x per CPU-second\"}~n", [Name, X]).

%% The VM's CPU time (all schedulers), in ms: a row's operations per
%% CPU-second compare with bench_table's on a loaded machine, where the
%% wall clock mostly measures the load.
cpu_ms() -> element(1, erlang:statistics(runtime)).

cpu_row(Name, MOps, Ops, C0) ->
    Cpu = max(cpu_ms() - C0, 1) / 1000,
    io:format("{\"name\":\"~s\",\"value\":~.3f,\"unit\":\"M ops/s\",\"per_cpu_second\":~.3f}~n",
              [Name, MOps, Ops / Cpu / 1.0e6]).

%% 1,000,000 distinct random keys below 2^40 (small integers), in a tuple,
%% made before the clock starts.  Random, not a formula of I: a sequence
%% like I * 2654435761 mod 2^32 puts each new key next to one inserted a
%% few steps before, still in cache, and made ETS's inserts 7x cheaper
%% than with random keys (bench_table's keys are random in key order too).
okeys() ->
    rand:seed(exsss, {1, 2, 3}),
    okeys(#{}, 0, []).

okeys(_, ?NKEYS, Acc) -> list_to_tuple(Acc);
okeys(Seen, N, Acc) ->
    K = rand:uniform(1 bsl 40) - 1,
    case Seen of
        #{K := _} -> okeys(Seen, N, Acc);
        _ -> okeys(Seen#{K => []}, N + 1, [K | Acc])
    end.

oinsert_loop(_, _, I) when I > ?NKEYS -> ok;
oinsert_loop(T, Keys, I) ->
    true = ets:insert(T, {element(I, Keys), I}),
    oinsert_loop(T, Keys, I + 1).

olookup_loop(T, Keys, End, X, N) ->
    X2 = olookup_batch(T, Keys, X, ?BATCH),
    case erlang:monotonic_time() < End of
        true -> olookup_loop(T, Keys, End, X2, N + ?BATCH);
        false -> N + ?BATCH
    end.

%% (element/2 of the key tuple is one more cache miss per lookup than
%% bench_table's, which computes its key: a little in ETS's disfavour)
olookup_batch(_, _, X, 0) -> X;
olookup_batch(T, Keys, X, I) ->
    X2 = (X * 69069 + 1) band 16#FFFFFFFF,
    [_] = ets:lookup(T, element(X2 rem ?NKEYS + 1, Keys)),
    olookup_batch(T, Keys, X2, I - 1).

%% Entries walked, in whole walks (at least one), until the deadline.
walk_loop(T, End, N) ->
    ?NKEYS = ets:foldl(fun(_, A) -> A + 1 end, 0, T),
    case erlang:monotonic_time() < End of
        true -> walk_loop(T, End, N + ?NKEYS);
        false -> N + ?NKEYS
    end.

jit() ->
    try erlang:system_info(emu_flavor) of F -> atom_to_list(F)
    catch _:_ -> "unknown"
    end.

list_to_float_any(S) ->
    try list_to_float(S) catch _:_ -> float(list_to_integer(S)) end.

deadline(Secs) -> erlang:monotonic_time() + erlang:convert_time_unit(round(Secs * 1.0e6), microsecond, native).

seconds_since(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6.

%% N workers at once, each returning its count of operations; M ops/s in all.
run(Fun, N, Secs) ->
    Parent = self(),
    Pids = [spawn_opt(fun() -> receive go -> Parent ! {done, self(), Fun(W)} end end, [link])
            || W <- lists:seq(1, N)],
    [P ! go || P <- Pids],
    Total = lists:sum([receive {done, P, Ops} -> Ops end || P <- Pids]),
    Total / Secs / 1.0e6.

counter_loop(C, End, N) ->
    counter_batch(C, ?BATCH),
    case erlang:monotonic_time() < End of
        true -> counter_loop(C, End, N + ?BATCH);
        false -> N + ?BATCH
    end.

counter_batch(_, 0) -> ok;
counter_batch(C, I) ->
    ets:update_counter(C, counter, 1),
    counter_batch(C, I - 1).

insert_loop(_, ?NKEYS) -> ok;
insert_loop(T, I) ->
    true = ets:insert(T, {I, I}),
    insert_loop(T, I + 1).

lookup_loop(T, End, X, N) ->
    X2 = lookup_batch(T, X, ?BATCH),
    case erlang:monotonic_time() < End of
        true -> lookup_loop(T, End, X2, N + ?BATCH);
        false -> N + ?BATCH
    end.

lookup_batch(_, X, 0) -> X;
lookup_batch(T, X, I) ->
    X2 = (X * 69069 + 1) band 16#FFFFFFFF, % stays a small integer (no bignum)
    [_] = ets:lookup(T, X2 rem ?NKEYS),
    lookup_batch(T, X2, I - 1).

row(Name, MOps) ->
    io:format("{\"name\":\"~s\",\"value\":~.3f,\"unit\":\"M ops/s\"}~n", [Name, MOps]).

%% Table T's memory per entry, and the figures it comes from.
bytes_row(Name, T, WordSize) ->
    Bytes = ets:info(T, memory) * WordSize,
    io:format("{\"name\":\"~s\",\"value\":~.2f,\"unit\":\"bytes\",\"table_bytes\":~b,\"entries\":~b}~n",
              [Name, Bytes / ets:info(T, size), Bytes, ets:info(T, size)]).

note(Text) ->
    io:format("{\"note\":\"~s\"}~n", [lists:flatten(Text)]).
