-- Tables and columns for Business numbers, webhooks and templates (issue 4).

SELECT 1;
