-- Driven by tests/lsp/test_neovim.py: start `axctl lsp` for the workspace $WS, wait for a
-- definition to be known, jump to it with vim.lsp.buf.definition() as a user's `gd`
-- mapping does, and write where the cursor landed to $RESULT. Works on Neovim 0.7+.
local root, result = os.getenv("WS"), os.getenv("RESULT")

local function finish(text)
  local f = assert(io.open(result, "w"))
  f:write(text)
  f:close()
  vim.cmd("qa!")
end

local id = vim.lsp.start_client({ name = "axd", cmd = { "axctl", "lsp" }, root_dir = root })
vim.lsp.buf_attach_client(0, id)
if not vim.wait(30000, function()
  local client = vim.lsp.get_client_by_id(id)
  return client ~= nil and client.initialized
end, 50) then
  finish("error: the server did not initialize")
end

vim.api.nvim_win_set_cursor(0, { 3, 8 }) -- on compute_total in print(compute_total([]))
local params = vim.lsp.util.make_position_params()
local known = vim.wait(60000, function()
  local answers = vim.lsp.buf_request_sync(0, "textDocument/definition", params, 2000) or {}
  for _, answer in pairs(answers) do
    if answer.result and #answer.result > 0 then
      return true
    end
  end
  return false
end, 100)
if not known then
  finish("error: no definition was found")
end

vim.lsp.buf.definition()
vim.wait(10000, function()
  return vim.api.nvim_buf_get_name(0):match("app%.py$") ~= nil
end, 20)
local cursor = vim.api.nvim_win_get_cursor(0)
finish(string.format("%s %d %d", vim.api.nvim_buf_get_name(0), cursor[1], cursor[2]))
